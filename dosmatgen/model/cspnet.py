"""The CSPNet denoiser of DOSMatGen: predicts the coordinate score, lattice ε and atom-type ε of a noisy crystal."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.utils import scatter

from dosmatgen.model.backbone import csp_layers, run_csp_layers
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.embeddings import FractionalFourierFeatures, SinusoidalTimeEmbedding


@dataclass(frozen=True)
class DenoiserOutput:
    """What the denoiser predicts for a noisy batch at step t.

    * ``coord_score`` (N, 3): normalised score of the wrapped-normal coordinate noise,
      ≈ ∇_{x_t} log q(x_t | x_0) / sqrt(σ_norm(t)) (true score, i.e. pointing towards the clean coordinates).
    * ``lattice_eps`` (B, 3, 3): ε of the lattice DDPM, rows like L (rotates as ``eps -> eps·Rᵀ``).
    * ``type_eps`` (N, C): ε of the one-hot atom-type DDPM, C = 100 classes (class = Z - 1).
    """

    coord_score: torch.Tensor
    lattice_eps: torch.Tensor
    type_eps: torch.Tensor


class CSPNetDenoiser(nn.Module):
    """Periodic E(3)-invariant message passing network (CSPNet family) with optional DOS conditioning.

    Input representation: atom types as a continuous (N, C) vector (noisy one-hot), fractional coordinates
    (N, 3), lattice (B, 3, 3) with lattice vectors as rows in Å, integer time steps t (B,).

    Invariances: only ``L·Lᵀ`` and periodic Fourier features of ``x_j - x_i`` enter, so the atom-wise outputs are
    invariant under ``L -> L·Rᵀ`` (any orthogonal R), under permutations (equivariant) and under periodic
    translations. The lattice output is ``M·L`` with an invariant 3×3 ``M`` from mean-pooled features, so it
    rotates as ``output -> output·Rᵀ``.
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.type_embedding = nn.Linear(config.num_classes, h)
        self.time_embedding = SinusoidalTimeEmbedding(config.time_dim)
        self.fourier = FractionalFourierFeatures(config.num_freqs)
        self.cond_projection: nn.Linear | None = None
        if config.cond_mode != "none":
            in_dim = config.cond_dim * (2 if config.window_channel else 1)
            self.cond_projection = nn.Linear(in_dim, h)
        self.input_mixer = nn.Linear(h + config.time_dim, h)
        self.layers = csp_layers(h, self.fourier, config.num_layers, config.layer_norm)
        self.final_norm = nn.LayerNorm(h) if config.layer_norm else nn.Identity()
        self.coord_head = nn.Linear(h, 3, bias=False)
        self.lattice_head = nn.Linear(h, 9, bias=False)
        self.type_head = nn.Linear(h, config.num_classes)

    # ------------------------------------------------------------------ conditioning
    def condition_embedding(self, cond: DOSCondition, batch: torch.Tensor) -> torch.Tensor:
        """Projected condition per atom (N, H), already multiplied by the 0/1 mask."""
        assert self.cond_projection is not None
        if cond.dos.shape[-1] != self.config.cond_dim:
            raise ValueError(f"condition has {cond.dos.shape[-1]} bins, the model expects {self.config.cond_dim}")
        window = cond.full_window()
        dos = cond.dos * window
        features = torch.cat([dos, window], dim=-1) if self.config.window_channel else dos
        projected = self.cond_projection(features) * cond.mask.to(dos.dtype).unsqueeze(-1)
        if self.config.cond_mode == "total":
            projected = projected[batch]  # (B, H) -> (N, H)
        return projected

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        atom_types: torch.Tensor,
        frac_coords: torch.Tensor,
        lattice: torch.Tensor,
        t: torch.Tensor,
        batch: torch.Tensor,
        cond: DOSCondition | None = None,
        num_atoms: torch.Tensor | None = None,
    ) -> DenoiserOutput:
        """Predict the noise of a batch of B crystals with N atoms in all.

        Args:
            atom_types: (N, C) float, noisy one-hot atom types.
            frac_coords: (N, 3) float, fractional coordinates (any real values; only differences mod 1 matter).
            lattice: (B, 3, 3) float, rows are lattice vectors (Å).
            t: (B,) time steps in 1..T (long or float).
            batch: (N,) long, crystal index of each atom (atoms of a crystal contiguous).
            cond: the DOS condition or None (unconditional: nothing is added).
            num_atoms: (B,) long, optional (derived from ``batch`` when None).
        """
        num_crystals = lattice.shape[0]
        if num_atoms is None:
            num_atoms = torch.bincount(batch, minlength=num_crystals)
        h = self.type_embedding(atom_types)
        if cond is not None:
            if self.cond_projection is None:
                raise ValueError("this denoiser was built with cond_mode='none' and takes no condition")
            h = h + self.condition_embedding(cond, batch)
        t_emb = self.time_embedding(t.reshape(-1))[batch]
        h = self.input_mixer(torch.cat([h, t_emb], dim=-1))

        h = self.final_norm(run_csp_layers(self.layers, self.fourier, h, frac_coords, lattice, num_atoms))

        pooled = scatter(h, batch, dim=0, dim_size=num_crystals, reduce="mean")
        lattice_map = self.lattice_head(pooled).reshape(num_crystals, 3, 3)
        return DenoiserOutput(
            coord_score=self.coord_head(h),
            lattice_eps=lattice_map @ lattice,
            type_eps=self.type_head(h),
        )
