"""Run a prepared sampling request batch by batch through the one sampler loop and return crystals."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from dosmatgen.batch import collate_crystals
from dosmatgen.crystal import Crystal
from dosmatgen.sampling.batches import output_to_crystals, sample_in_batches  # noqa: F401  (output_to_crystals re-exported)
from dosmatgen.sampling.condition import site_condition
from dosmatgen.sampling.total_condition import total_condition
from dosmatgen.sampling.guidance import ClassifierFreeGuidance, ClassifierGuidance, Guidance, NoGuidance
from dosmatgen.sampling.request import PreparedSampling
from dosmatgen.sampling.sampler import PredictorCorrectorSampler
from dosmatgen.sampling.start import prior_start, template_start
from dosmatgen.sampling.trajectory import Trajectory

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """``crystals[i]`` is candidate i, or None when its final lattice/coordinates were not finite.

    ``batch_seeds[k]`` is the seed of batch k (rows ``k*batch_size ..``); ``trajectories[k]`` its frames when
    recorded."""

    crystals: list[Crystal | None]
    num_atoms: np.ndarray
    batch_seeds: list[int]
    target_id: str
    trajectories: list[Trajectory] = field(default_factory=list)

    @property
    def n_valid(self) -> int:
        return sum(c is not None for c in self.crystals)


def target_id(name: str | None) -> str:
    """A run-store-safe id for the target (letters, digits, '_', '.', '-')."""
    if not name:
        return "unconditional"
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip("_.-")[:64] or "target"


def build_guidance(p: PreparedSampling) -> Guidance:
    if p.guidance_name == "cfg":
        return ClassifierFreeGuidance(w=float(p.request.w))
    if p.guidance_name == "classifier":
        return ClassifierGuidance(p.regressor, strength=float(p.request.strength), unconditional_model=p.unconditional_model,
                                  mask_gradients=bool(p.request.mask_classifier_gradients))
    return NoGuidance()


def generate(p: PreparedSampling, progress: bool = False) -> GenerationResult:
    """Sample ``request.n`` crystals in batches of ``request.batch_size``.

    Batch k uses its own generator seeded with ``shard_seed(seed, target_id, k)`` (the run store's rule), so a batch
    is reproducible on its own and results do not depend on the order batches are run in.
    """
    r = p.request
    tid = target_id(p.target_name)
    sampler = PredictorCorrectorSampler(p.model, p.diffusion, step_lr=float(r.step_lr))

    def make_batch(rows: range, gen: torch.Generator):
        counts = p.num_atoms[rows.start : rows.stop]
        if p.templates:
            batch = collate_crystals([p.templates[i % len(p.templates)] for i in rows])
            start = template_start(p.diffusion, p.diffusion.clean_state(batch.to(p.diffusion.device)), p.t_start, gen)
        else:
            start = prior_start(p.diffusion, counts, gen)
        cond = None
        if p.target_scaled is not None and p.checkpoint.model_config.cond_mode == "total":
            # one total DOS for every crystal, or one per crystal (design: a generated DOS per candidate)
            rows_scaled = p.target_scaled[rows.start : rows.stop] if p.target_scaled.dim() == 2 else p.target_scaled
            cond = total_condition(rows_scaled, counts)
        elif p.target_scaled is not None:
            cond = site_condition(p.target_scaled, counts, p.condition_sites, p.window)
        return start, cond

    done = sample_in_batches(sampler, build_guidance(p), make_batch, n=r.n, batch_size=r.batch_size, seed=int(r.seed),
                             stream=tid, constraints=[p.fixed_types] if p.fixed_types.sites else [],
                             record_trajectories=r.record_trajectories, log_progress=progress)
    return GenerationResult(done.crystals, p.num_atoms.numpy(), done.batch_seeds, tid, done.trajectories)
