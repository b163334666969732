"""Noise schedules: the cosine β schedule (lattice and atom types) and the geometric σ schedule (coordinates).

All tables have T + 1 entries and are indexed by the time step t directly: index 0 is the clean data
(β_0 = 0, ᾱ_0 = 1, σ_0 = 0), indices 1..T are the diffusion steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from dosmatgen.diffusion.wrapped_normal import score_mean_square


def cosine_alpha_bar(t: torch.Tensor, num_steps: int, s: float = 0.008) -> torch.Tensor:
    """f(t)/f(0) with f(t) = cos²(((t/T) + s)/(1 + s) · π/2) (Nichol & Dhariwal 2021), before β clipping."""
    f = torch.cos(((t / num_steps) + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f / f0


@dataclass(frozen=True)
class BetaSchedule:
    """DDPM tables, each (T+1,) float64, indexed by t (entry 0 = clean data).

    * ``betas[t]`` β_t, clipped to [beta_min, beta_max] for t ≥ 1; ``betas[0] = 0``.
    * ``alphas[t]`` = 1 - β_t; ``alpha_bars[t]`` = Π_{s≤t} α_s (so ``alpha_bars[0] = 1``).
    * ``posterior_sigmas[t]`` = sqrt(β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)) for t ≥ 1 (0 at t = 1), 0 at t = 0.
    """

    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    posterior_sigmas: torch.Tensor

    @property
    def num_steps(self) -> int:
        return self.betas.numel() - 1

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, beta_min: float = 1e-4, beta_max: float = 0.9999) -> "BetaSchedule":
        if num_steps < 2:
            raise ValueError(f"need at least 2 diffusion steps, got {num_steps}")
        steps = torch.arange(num_steps + 1, dtype=torch.float64)
        abar_raw = cosine_alpha_bar(steps, num_steps, s)
        betas = (1 - abar_raw[1:] / abar_raw[:-1]).clamp(beta_min, beta_max)
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, 0)
        post = torch.zeros_like(betas)
        post[1:] = torch.sqrt(betas[1:] * (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:]))
        return cls(betas, alphas, alpha_bars, post)


@dataclass(frozen=True)
class SigmaSchedule:
    """Variance-exploding wrapped-normal schedule for fractional coordinates, tables (T+1,) float64.

    * ``sigmas[t]`` = σ_1 (σ_T/σ_1)^((t-1)/(T-1)) for t ≥ 1 (geometric from ``sigma_begin`` to ``sigma_end``),
      ``sigmas[0] = 0``.
    * ``sigma_norms[t]`` = E[score²] of the wrapped normal with σ_t (see
      :func:`~dosmatgen.diffusion.wrapped_normal.score_mean_square`); ``sigma_norms[0] = 1`` (unused).
    """

    sigmas: torch.Tensor
    sigma_norms: torch.Tensor

    @property
    def num_steps(self) -> int:
        return self.sigmas.numel() - 1

    @property
    def sigma_begin(self) -> float:
        return float(self.sigmas[1])

    @classmethod
    def geometric(cls, num_steps: int = 1000, sigma_begin: float = 0.005, sigma_end: float = 0.5) -> "SigmaSchedule":
        if num_steps < 2:
            raise ValueError(f"need at least 2 diffusion steps, got {num_steps}")
        if not 0 < sigma_begin < sigma_end:
            raise ValueError(f"need 0 < sigma_begin < sigma_end, got {sigma_begin}, {sigma_end}")
        sigmas, norms = _geometric_tables(int(num_steps), float(sigma_begin), float(sigma_end))
        return cls(sigmas.clone(), norms.clone())


@lru_cache(maxsize=8)
def _geometric_tables(num_steps: int, sigma_begin: float, sigma_end: float) -> tuple[torch.Tensor, torch.Tensor]:
    """σ_t and σ_norm(σ_t) tables (cached: the quadrature takes ~0.5 s for T = 1000)."""
    exponent = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    sig = sigma_begin * (sigma_end / sigma_begin) ** exponent
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), sig])
    norms = torch.cat([torch.ones(1, dtype=torch.float64), score_mean_square(sig)])
    return sigmas, norms
