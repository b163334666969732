"""Loaders that plug the library's own pieces into the screen's stage contracts (:mod:`dosmatgen.screen.stages`).

* :func:`load_diffusion_sampler`: the trained DOS-conditioned diffusion model (:mod:`dosmatgen.sampling`); the
  checkpoint is loaded ONCE per process, each shard is one batch of ``generate`` with the shard's seed.
  Conditioning: the target site DOS (unscaled, SITE_GRID) is scaled with the checkpoint's site scaler and put on
  ``condition_sites`` (default site 0, the paper's protocol) with classifier-free guidance (weight ``w``).
* :func:`load_mlff_relaxer`: the batched FIRE + cell-filter relaxer (:mod:`dosmatgen.relax`) on any registered
  MLFF (``chgnet``, ``orb``, ``emt``, ``lj``), formation energies against that MLFF's elemental references.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.screen.stages import RelaxOutcome, TargetContext

log = logging.getLogger(__name__)


class DiffusionSampler:
    """Sampler contract around a loaded :class:`dosmatgen.sampling.request.PreparedSampling`."""

    def __init__(self, checkpoint: str, *, guidance: str | None = None, w: float = 1.0, step_lr: float = 5e-6,
                 condition_sites: str | Sequence[int] | None = None, use_ema: bool = True, device: str = "cpu",
                 sampling_steps: int | None = None) -> None:
        from dosmatgen.sampling.request import SamplingRequest, parse_sites, prepare

        # unconditional preparation loads the checkpoint once; targets are attached per call without reloading
        self.base = prepare(SamplingRequest(checkpoint=checkpoint, n=1, guidance="none", step_lr=step_lr,
                                            sampling_steps=sampling_steps, use_ema=use_ema, device=device))
        self.guidance = guidance or "cfg"
        self.w = float(w)
        self.condition_sites = parse_sites(condition_sites)
        self._scaler = None

    def _site_scaler(self):
        if self._scaler is None:
            from dosmatgen.checkpoint_compat import site_scaler

            self._scaler = site_scaler(self.base.checkpoint.scalers, self.base.request.checkpoint, "checkpoint")
        return self._scaler

    def __call__(self, target: TargetContext, num_atoms: np.ndarray, seed: int) -> list[Crystal | None]:
        import torch

        from dosmatgen.sampling.generate import generate

        n = int(len(num_atoms))
        request = dataclasses.replace(self.base.request, n=n, batch_size=n, seed=int(seed), w=self.w)
        p = dataclasses.replace(self.base, request=request, num_atoms=torch.as_tensor(np.asarray(num_atoms), dtype=torch.long))
        if target.conditioning is not None:
            scaled = self._site_scaler().transform(np.asarray(target.conditioning, dtype=np.float32))
            p = dataclasses.replace(p, guidance_name=self.guidance, target_name=target.id,
                                    target_features=np.asarray(target.conditioning, dtype=np.float32),
                                    target_scaled=torch.as_tensor(scaled, dtype=torch.float32),
                                    condition_sites=self.condition_sites)
        return list(generate(p).crystals)


def load_diffusion_sampler(checkpoint: str, guidance: str | None = None, w: float = 1.0, step_lr: float = 5e-6,
                           condition_sites: str | Sequence[int] | None = None, use_ema: bool = True,
                           device: str = "cpu", sampling_steps: int | None = None) -> DiffusionSampler:
    """``sampling_steps``: S steps of the T-step reverse grid (None: all T; docs/sampling-steps.md)."""
    return DiffusionSampler(checkpoint, guidance=guidance, w=w, step_lr=step_lr, condition_sites=condition_sites,
                            use_ema=use_ema, device=device, sampling_steps=sampling_steps)


class MLFFRelaxer:
    """Relaxer contract around :class:`dosmatgen.relax.workflow.StabilityWorkflow` (energies per atom, eV)."""

    def __init__(self, mlff: str = "chgnet", mlff_options: dict[str, Any] | None = None, fmax: float = 0.05,
                 max_steps: int = 500, batch_size: int = 64, references_cache: str | None = None,
                 competing_phases: str | None = None, optimizer: str = "fire") -> None:
        from dosmatgen.relax import RelaxSettings, get_mlff
        from dosmatgen.relax.workflow import StabilityWorkflow

        self.mlff = get_mlff(mlff, **dict(mlff_options or {}))
        self.workflow = StabilityWorkflow(self.mlff, RelaxSettings(fmax=float(fmax), max_steps=int(max_steps),
                                                                   batch_size=int(batch_size), optimizer=str(optimizer)),
                                          references_cache=references_cache, competing_phases=competing_phases)
        # known phases for the energy above the hull, relaxed once by the same force field (here, not per shard)
        self.relaxer, self.references, self.competing = self.workflow.relaxer, self.workflow.references, self.workflow.competing

    def __call__(self, crystals: list[Crystal]) -> list[RelaxOutcome]:
        done = self.workflow.run(crystals)
        if done.reference_note:
            log.warning("relax: %s", done.reference_note)
        out = []
        for r, (_, fe), e_hull in zip(done.results, done.formation_energy, done.energy_above_hull):
            if not r.ok:
                out.append(RelaxOutcome(None, r.energy_initial_per_atom, float("nan"), steps=int(r.steps),
                                        error=f"{r.status}: {r.reason}", failure=r.failure))
                continue
            out.append(RelaxOutcome(r.relaxed, r.energy_initial_per_atom, r.energy_relaxed_per_atom, fe,
                                    int(r.steps), bool(r.converged), energy_above_hull=e_hull))
        return out


def load_mlff_relaxer(mlff: str = "chgnet", mlff_options: dict[str, Any] | None = None, fmax: float = 0.05,
                      max_steps: int = 500, batch_size: int = 64, references_cache: str | None = None,
                      competing_phases: str | None = None, optimizer: str = "fire") -> MLFFRelaxer:
    """``competing_phases``: a CIF/extxyz file or a folder/zip of CIFs of known phases; each candidate then gets
    its energy above their hull (``relax.filter.max_energy_above_hull`` cuts on it). ``optimizer``: "fire" or
    "bfgs" for the candidates (:class:`dosmatgen.relax.RelaxSettings`; the elemental references always use FIRE)."""
    return MLFFRelaxer(mlff, mlff_options, fmax, max_steps, batch_size, references_cache, competing_phases, optimizer)


class SurrogateScorer:
    """Scorer contract: MAE, in the surrogate's scaled feature space, between the surrogate's predicted site DOS
    of the conditioned ``site`` and the target site DOS (the paper's DOS-match measure); lower is better."""

    def __init__(self, checkpoint: str, site: int = 0, device: str = "cpu") -> None:
        from dosmatgen.surrogate.predict import SurrogatePredictor

        self.predictor = SurrogatePredictor.from_checkpoint(checkpoint, device=device)
        if self.predictor.target != "site":
            from dosmatgen.errors import CheckpointError

            raise CheckpointError(f"{checkpoint}: ranking against a site-DOS target needs a site surrogate")
        self.site = int(site)

    def __call__(self, crystals: list[Crystal], target: TargetContext, formation_energy: np.ndarray) -> np.ndarray:
        from dosmatgen.errors import InvalidRecordError

        if target.conditioning is None:
            raise InvalidRecordError(f"target {target.id!r} is unconditioned: rank it by formation energy instead")
        pred = self.predictor.predict_sites(crystals, [self.site] * len(crystals), scaled=True)
        want = self.predictor.scaler.transform(np.asarray(target.conditioning, dtype=np.float64)[None])[0]
        return np.mean(np.abs(pred - want[None]), axis=1)


def load_surrogate_scorer(checkpoint: str, site: int = 0, device: str = "cpu") -> SurrogateScorer:
    return SurrogateScorer(checkpoint, site, device)


def site_dos_predictor(rank_loader: str, options: dict[str, Any]) -> Callable[[Crystal], np.ndarray] | None:
    """``crystal -> (n_atoms, 400) site DOS, states/eV`` from the surrogate the rank stage scores with, or None when
    the run ranks with something else (the summary then has no surrogate curve to draw)."""
    if not str(rank_loader).endswith(":load_surrogate_scorer") or "checkpoint" not in options:
        return None
    from dosmatgen.surrogate.predict import SurrogatePredictor

    predictor = SurrogatePredictor.from_checkpoint(options["checkpoint"], device=options.get("device", "cpu"))
    return lambda crystal: predictor.predict([crystal])[0]
