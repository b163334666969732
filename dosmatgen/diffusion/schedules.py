"""Noise schedules: the cosine β schedule (lattice and atom types) and the geometric σ schedule (coordinates).

All tables have T + 1 entries and are indexed by the time step t directly: index 0 is the clean data
(β_0 = 0, ᾱ_0 = 1, σ_0 = 0), indices 1..T are the diffusion steps.

Fewer-step sampling (docs/sampling-steps.md) keeps S of the T steps (:func:`strided_steps`) and jumps between
kept steps s < t with the transition of the SAME forward process: ``α_{t|s} = ᾱ_t/ᾱ_s`` for the DDPMs
(:meth:`BetaSchedule.transition`) and the σ sub-sequence for the wrapped normal (the reverse-VE step from σ_t
to σ_s). A jump of one step (s = t − 1) returns the stored tables exactly, so S = T is the full sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from dosmatgen.diffusion.wrapped_normal import score_mean_square


def sub_sequence(steps, num_steps: int) -> torch.Tensor:
    """``steps`` as a long tensor, checked to ascend strictly from 0 to at most ``num_steps``."""
    steps = torch.as_tensor(steps, dtype=torch.long)
    if steps.dim() != 1 or steps.numel() < 2 or int(steps[0]) != 0 or bool((steps[1:] <= steps[:-1]).any()) or int(steps[-1]) > num_steps:
        raise ValueError(f"steps must ascend from 0 to at most {num_steps}, got {steps.tolist()}")
    return steps


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

    def transition(self, t: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(α_{t|s}, β_{t|s}, posterior σ) of the jump s -> t (0 <= s < t, elementwise long tensors), float64.

        ``α_{t|s} = ᾱ_t/ᾱ_s``, ``β_{t|s} = 1 − α_{t|s}`` and the posterior standard deviation of q(y_s | y_t, y_0)
        ``sqrt(β_{t|s}(1 − ᾱ_s)/(1 − ᾱ_t))``; where s = t − 1 the stored ``alphas``, ``betas`` and
        ``posterior_sigmas`` themselves (bit-identical to the one-step tables).
        """
        if bool((s >= t).any()) or bool((s < 0).any()):
            raise ValueError("a transition needs 0 <= s < t")
        ab_t, ab_s = self.alpha_bars[t], self.alpha_bars[s]
        alpha = ab_t / ab_s
        beta = 1 - alpha
        post = torch.sqrt(beta * (1 - ab_s) / (1 - ab_t))
        one = s == t - 1
        return (torch.where(one, self.alphas[t], alpha), torch.where(one, self.betas[t], beta),
                torch.where(one, self.posterior_sigmas[t], post))

    def respaced(self, steps: torch.Tensor) -> "BetaSchedule":
        """The schedule of the sub-sequence ``steps`` (ascending, starting with 0): entry k is the jump
        steps[k−1] -> steps[k]; its ``alpha_bars`` equal the original ᾱ at the kept steps (up to rounding)."""
        steps = sub_sequence(steps, self.num_steps)
        alpha, beta, post = self.transition(steps[1:], steps[:-1])
        zero = torch.zeros(1, dtype=torch.float64)
        betas = torch.cat([zero, beta])
        alphas = torch.cat([zero + 1, alpha])
        return BetaSchedule(betas, alphas, torch.cumprod(alphas, 0), torch.cat([zero, post]))


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

    def respaced(self, steps: torch.Tensor) -> "SigmaSchedule":
        """σ and σ_norm at the sub-sequence ``steps`` (ascending, starting with 0): the re-spaced VE schedule
        whose reverse step k goes from σ_{steps[k]} to σ_{steps[k−1]}."""
        steps = sub_sequence(steps, self.num_steps)
        return SigmaSchedule(self.sigmas[steps].clone(), self.sigma_norms[steps].clone())


def strided_steps(num_steps: int, num_sampling_steps: int) -> torch.Tensor:
    """The S = ``num_sampling_steps`` kept steps of 1..T, ascending and evenly spaced: round(k·T/S) for k = 1..S
    (T itself always kept; S = T keeps every step)."""
    if not 1 <= int(num_sampling_steps) <= int(num_steps):
        raise ValueError(f"sampling steps must lie in 1..{num_steps}, got {num_sampling_steps}")
    k = torch.arange(1, int(num_sampling_steps) + 1, dtype=torch.float64)
    return torch.round(k * int(num_steps) / int(num_sampling_steps)).long()


def reverse_steps(num_steps: int, num_sampling_steps: int | None, t_start: int) -> list[int]:
    """The steps a reverse run visits, descending from ``t_start`` to 0: t_start, then the kept steps
    (:func:`strided_steps`) below it, then 0. ``num_sampling_steps`` None or T: every step t_start, …, 1, 0.
    A start below T takes the kept steps under it only (S = 100 of T = 1000 from t_start 200 is 20 jumps)."""
    if not 1 <= int(t_start) <= int(num_steps):
        raise ValueError(f"t_start must lie in 1..{num_steps}, got {t_start}")
    if num_sampling_steps is None or int(num_sampling_steps) == int(num_steps):
        return list(range(int(t_start), -1, -1))
    kept = [int(t) for t in strided_steps(num_steps, num_sampling_steps).tolist() if t < int(t_start)]
    return [int(t_start), *reversed(kept), 0]


@lru_cache(maxsize=8)
def _geometric_tables(num_steps: int, sigma_begin: float, sigma_end: float) -> tuple[torch.Tensor, torch.Tensor]:
    """σ_t and σ_norm(σ_t) tables (cached: the quadrature takes ~0.5 s for T = 1000)."""
    exponent = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)
    sig = sigma_begin * (sigma_end / sigma_begin) ** exponent
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64), sig])
    norms = torch.cat([torch.ones(1, dtype=torch.float64), score_mean_square(sig)])
    return sigmas, norms
