"""Where the reverse process starts: the prior at t = T, or a template noised by the forward process to t_start < T."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.diffusion.state import CrystalState, StateNoise
from dosmatgen.errors import InvalidRecordError, field_error


@dataclass(frozen=True)
class SamplingStart:
    """The state S_{t_start} and its step (1..T)."""

    state: CrystalState
    t_start: int


def prior_start(diffusion: JointDiffusion, num_atoms: torch.Tensor, generator: torch.Generator | None) -> SamplingStart:
    """S_T from the priors (A_T, L_T ~ N(0, I), X_T ~ U[0, 1))."""
    return SamplingStart(diffusion.prior_sample(num_atoms, generator), diffusion.num_steps)


def template_start(
    diffusion: JointDiffusion, template: CrystalState, t_start: int, generator: torch.Generator | None
) -> SamplingStart:
    """A clean template batch noised by q(S_t | S_0) to ``t_start`` (template-guided generation, reconstruction
    protocol). ``t_start == T`` ignores the template's values and starts from the prior with its atom counts."""
    t_start = int(t_start)
    if not 1 <= t_start <= diffusion.num_steps:
        raise field_error(InvalidRecordError, f"{{t_start}} must lie in 1..{diffusion.num_steps}, got {t_start}")
    if t_start == diffusion.num_steps:
        return prior_start(diffusion, template.num_atoms, generator)
    noise = StateNoise.randn_like(template, generator)
    return SamplingStart(diffusion.q_sample(template, t_start, noise), t_start)
