"""g(y | S_t, t): a time-dependent CSPNet that predicts the scaled site DOS of a NOISY crystal (classifier guidance)."""

from __future__ import annotations

import torch
from torch import nn

from dosmatgen.model.backbone import csp_layers, run_csp_layers
from dosmatgen.model.embeddings import FractionalFourierFeatures, SinusoidalTimeEmbedding
from dosmatgen.regressor.config import RegressorConfig


class NoisyDOSRegressor(nn.Module):
    """Same backbone as the denoiser (type embedding of the continuous one-hot, sinusoidal time embedding mixed in,
    CSP layers on fully connected edges with ``flatten(L Lᵀ)`` and Fourier features) with a node-level head
    ``Linear(H -> out_dim)``. Differentiable in the continuous atom types, the coordinates and the lattice, which is
    what classifier guidance needs. Invariant to rotations of L, periodic translations; equivariant to permutations.
    """

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.type_embedding = nn.Linear(config.num_classes, h)
        self.time_embedding = SinusoidalTimeEmbedding(config.time_dim)
        self.fourier = FractionalFourierFeatures(config.num_freqs)
        self.input_mixer = nn.Linear(h + config.time_dim, h)
        self.layers = csp_layers(h, self.fourier, config.num_layers, config.layer_norm)
        self.final_norm = nn.LayerNorm(h) if config.layer_norm else nn.Identity()
        self.head = nn.Linear(h, config.out_dim)

    def forward(
        self,
        atom_types: torch.Tensor,
        frac_coords: torch.Tensor,
        lattice: torch.Tensor,
        t: torch.Tensor,
        batch: torch.Tensor,
        num_atoms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """atom_types (N, C) float noisy one-hot; frac_coords (N, 3); lattice (B, 3, 3) Å rows; t (B,) steps 1..T;
        batch (N,). Returns (N, out_dim) scaled site DOS."""
        b = lattice.shape[0]
        if num_atoms is None:
            num_atoms = torch.bincount(batch, minlength=b)
        h = self.type_embedding(atom_types)
        h = self.input_mixer(torch.cat([h, self.time_embedding(t.reshape(-1))[batch]], dim=-1))
        h = run_csp_layers(self.layers, self.fourier, h, frac_coords, lattice, num_atoms)
        return self.head(self.final_norm(h))
