"""THE predictor–corrector sampler: one reverse loop that every mode plugs into.

Per step t = t_start .. 1 (DiffCSP's scheme, FACTS §1), or per jump t -> s between the kept steps of a fewer-step
grid (``diffusion.sampling_steps``, see docs/sampling-steps.md):

1. corrector (skipped when ``step_lr == 0``): the guidance's prediction at S_t, one Langevin step on X only
   (its noise is zero on the last step, as in DiffCSP);
2. predictor: the guidance's prediction at the corrected state, one reverse step t -> s for X (VE), L and A (DDPM);
3. the guidance may move the proposed S_s (classifier guidance);
4. constraints are enforced (fixed atom types), the frame is recorded when asked.

Modes are composed, never copied: the start (prior or noised template), the condition (sites, per-atom mask,
energy window), the guidance (none | cfg | classifier) and the constraints are independent arguments.
All randomness comes from one ``torch.Generator``, so equal seeds give equal samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from dosmatgen.diffusion.noising import one_hot_to_atomic_numbers
from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.diffusion.state import CrystalState, StateNoise
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.sampling.constraints import Constraint, apply_all
from dosmatgen.sampling.guidance import Guidance, NoGuidance
from dosmatgen.sampling.start import SamplingStart
from dosmatgen.sampling.trajectory import Trajectory


@dataclass
class SamplingOutput:
    """The final state S_0 (types still continuous; ``atomic_numbers`` is their argmax + 1) and the optional
    trajectory."""

    state: CrystalState
    trajectory: Trajectory | None = None
    model_calls: int = 0

    @property
    def atomic_numbers(self) -> torch.Tensor:
        return one_hot_to_atomic_numbers(self.state.atom_types)


@dataclass
class PredictorCorrectorSampler:
    """Reverse diffusion with a denoiser, a :class:`~dosmatgen.diffusion.process.JointDiffusion` and a step size.

    ``step_lr`` is the Langevin corrector's step (DiffCSP: 5e-6 for mp_20-like data); 0 disables the corrector
    (one denoiser call per step instead of two). The steps visited are ``diffusion.reverse_steps(t_start)``:
    every step for a diffusion built without ``sampling_steps``, else the strided grid.
    """

    model: nn.Module
    diffusion: JointDiffusion
    step_lr: float = 5e-6

    @torch.no_grad()
    def run(
        self,
        start: SamplingStart,
        cond: DOSCondition | None = None,
        guidance: Guidance | None = None,
        constraints: Sequence[Constraint] = (),
        generator: torch.Generator | None = None,
        record_trajectory: bool = False,
    ) -> SamplingOutput:
        """Denoise ``start.state`` from ``start.t_start`` to 0.

        Args:
            start: S_{t_start} (see :mod:`dosmatgen.sampling.start`).
            cond: the per-atom condition aligned with the state's atoms (None: unconditional).
            guidance: how predictions are formed (default :class:`NoGuidance`).
            constraints: enforced on the start and after every step.
            generator: the source of every random draw.
            record_trajectory: keep a copy of every state (memory: T × state size).
        """
        guidance = guidance or NoGuidance()
        device = self.diffusion.device
        state = apply_all(constraints, start.state.to(device))
        cond = None if cond is None else cond.to(device)
        trajectory = Trajectory() if record_trajectory else None
        if trajectory is not None:
            trajectory.record(start.t_start, state)
        b = state.num_crystals
        calls = 0
        steps = self.diffusion.reverse_steps(start.t_start)
        for step, step_prev in zip(steps[:-1], steps[1:]):
            t = torch.full((b,), step, dtype=torch.long, device=device)
            s = torch.full((b,), step_prev, dtype=torch.long, device=device)
            if self.step_lr > 0:
                pred = guidance.predict(self.model, state, t, cond)
                calls += 1
                z = torch.randn(state.frac_coords.shape, generator=generator, device=device)
                if step_prev == 0:
                    z = torch.zeros_like(z)
                state = self.diffusion.corrector_step(state, pred.coord_score, t, self.step_lr, z)
            pred = guidance.predict(self.model, state, t, cond)
            calls += 1
            noise = StateNoise.randn_like(state, generator)
            proposed = self.diffusion.predictor_step(state, pred, t, noise, s)
            scales = self.diffusion.predictor_scales(t, b, s)
            proposed = guidance.adjust(state, proposed, t, scales, cond)
            state = apply_all(constraints, proposed)
            if trajectory is not None:
                trajectory.record(step_prev, state)
        return SamplingOutput(state=state, trajectory=trajectory, model_calls=calls)
