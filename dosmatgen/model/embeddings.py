"""Sinusoidal embeddings: diffusion time steps and periodic Fourier features of fractional differences."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalTimeEmbedding(nn.Module):
    """Transformer-style embedding of a diffusion step.

    ``forward(t)``: t (B,) integer or float time steps -> (B, dim) float, ``[sin(t·f_k), cos(t·f_k)]`` with
    ``f_k = 10000^(-k/(dim/2 - 1))``, k = 0..dim/2-1.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding dim must be even and >= 2, got {dim}")
        half = dim // 2
        scale = math.log(10000.0) / max(half - 1, 1)
        self.register_buffer("freqs", torch.exp(-scale * torch.arange(half, dtype=torch.float32)), persistent=False)
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.to(self.freqs.dtype).unsqueeze(-1) * self.freqs
        return torch.cat([args.sin(), args.cos()], dim=-1)


class FractionalFourierFeatures(nn.Module):
    """Periodic features of fractional-coordinate differences.

    ``forward(d)``: d (E, 3) fractional differences -> (E, 6·num_freqs) float,
    ``[sin(2π k d_c), cos(2π k d_c)]`` for k = 1..num_freqs and c = 0..2. The features are invariant under
    ``d -> d + integer`` and therefore under any periodic translation of all atoms.
    """

    def __init__(self, num_freqs: int) -> None:
        super().__init__()
        if num_freqs < 1:
            raise ValueError(f"num_freqs must be >= 1, got {num_freqs}")
        self.register_buffer(
            "freqs", 2.0 * math.pi * torch.arange(1, num_freqs + 1, dtype=torch.float32), persistent=False
        )
        self.num_freqs = num_freqs

    @property
    def out_dim(self) -> int:
        return 6 * self.num_freqs

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        args = (d.unsqueeze(-1) * self.freqs).flatten(start_dim=1)  # (E, 3·K)
        return torch.cat([args.sin(), args.cos()], dim=-1)
