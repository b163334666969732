"""The forward DOS surrogate network: CSPNet message passing on clean crystals, no time input."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.utils import scatter

from dosmatgen.model.backbone import csp_layers, run_csp_layers
from dosmatgen.model.embeddings import FractionalFourierFeatures
from dosmatgen.surrogate.config import SurrogateConfig


class DOSSurrogate(nn.Module):
    """Structure -> scaled DOS, built from the denoiser's building blocks (:mod:`dosmatgen.model`).

    Atom types enter as a one-hot over ``num_classes`` (class = Z - 1) through ``Linear(C -> H)``; then
    ``num_layers`` :class:`~dosmatgen.model.layers.CSPLayer` on fully connected edges with ``flatten(L Lᵀ)``
    and periodic Fourier features of ``x_j - x_i``; a final LayerNorm; and a head:

    * site: ``Linear(H -> 400)`` per atom -> (N, 400);
    * total: mean pool per crystal, ``Linear(H -> 256)`` -> (B, 256).

    Outputs are in the *scaled* feature space of the training data (per-bin standardised). The network is
    invariant to rotations of the lattice, periodic translations and (per atom: equivariant to) permutations.
    """

    def __init__(self, config: SurrogateConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.type_embedding = nn.Linear(config.num_classes, h)
        self.fourier = FractionalFourierFeatures(config.num_freqs)
        self.layers = csp_layers(h, self.fourier, config.num_layers, config.layer_norm)
        self.final_norm = nn.LayerNorm(h) if config.layer_norm else nn.Identity()
        self.head = nn.Linear(h, config.out_dim)

    def forward(
        self,
        atom_types: torch.Tensor,
        frac_coords: torch.Tensor,
        lattice: torch.Tensor,
        batch: torch.Tensor,
        num_atoms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict scaled DOS.

        Args:
            atom_types: (N,) long atomic numbers Z (1..num_classes).
            frac_coords: (N, 3) fractional coordinates.
            lattice: (B, 3, 3) lattice vectors as rows, Å.
            batch: (N,) crystal index of each atom (contiguous).
            num_atoms: (B,) atoms per crystal (derived from ``batch`` when None).

        Returns:
            (N, site_dos_dim) for ``target="site"``, (B, total_dos_dim) for ``target="total"``.
        """
        num_crystals = lattice.shape[0]
        if num_atoms is None:
            num_atoms = torch.bincount(batch, minlength=num_crystals)
        one_hot = nn.functional.one_hot(atom_types.long() - 1, self.config.num_classes).to(lattice.dtype)
        h = self.type_embedding(one_hot)
        h = self.final_norm(run_csp_layers(self.layers, self.fourier, h, frac_coords, lattice, num_atoms))
        if self.config.target == "total":
            h = scatter(h, batch, dim=0, dim_size=num_crystals, reduce="mean")
        return self.head(h)

    def forward_batch(self, batch) -> torch.Tensor:
        """:meth:`forward` on a torch_geometric batch (fields of :mod:`dosmatgen.batch`)."""
        return self(batch.atom_types, batch.frac_coords, batch.lattice, batch.batch, batch.num_atoms)
