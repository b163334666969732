"""Reconstruction runs: regenerate each test structure from ALL of its sites' DOS (paper Tables 1 and 2).

For a test structure S0 with site DOS y (n, 400) and one protocol setting (t_start, guidance):

1. S0 is noised by the forward process to ``t_start`` (``template_start``); at t_start = T the start is the
   prior with S0's atom count (from noise, the count known);
2. the one predictor–corrector sampler denoises it to t = 0 with every site conditioned on its own scaled DOS
   (mask 1 on all atoms) under the chosen guidance:
   ``cfg`` ``(1 + w)·ε_cond − w·ε_uncond``; ``none`` one conditional pass (w = 0);
   ``classifier`` the denoiser's unconditional score plus the regressor's gradient; ``uncond`` the same model with
   the condition masked out on every site (mask 0), one pass: the unconditioned baseline.

Generated atom i corresponds to test atom i (same count, same order), which is how DOS match is scored.
A batch whose sampler raises (e.g. non-finite states reaching a layer that checks them) is recorded as failed
and its structures count as invalid: one bad batch never ends the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dosmatgen.batch import collate_crystals
from dosmatgen.crystal import Crystal
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH
from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.sampling.batches import sample_in_batches
from dosmatgen.sampling.guidance import ClassifierFreeGuidance, ClassifierGuidance, Guidance, NoGuidance
from dosmatgen.sampling.sampler import PredictorCorrectorSampler
from dosmatgen.sampling.start import template_start

log = logging.getLogger(__name__)


@dataclass
class ReconstructionRun:
    """The generated structures of one setting (``crystals[i]`` None = invalid/non-finite output) and its cost."""

    guidance: str
    t_start: int
    crystals: list[Crystal | None]
    seconds: float
    model_calls: int
    batch_seeds: list[int]
    failed_batches: list[str] = field(default_factory=list)

    @property
    def n_generated(self) -> int:
        return sum(c is not None for c in self.crystals)

    def timing(self) -> dict:
        n = len(self.crystals)
        return {"generation_s": self.seconds, "seconds_per_structure": self.seconds / n if n else float("nan"),
                "model_calls": self.model_calls, "batches": len(self.batch_seeds),
                "failed_batches": list(self.failed_batches)}


def build_guidance(name: str, *, w: float = 1.0, regressor: nn.Module | None = None, strength: float = DEFAULT_CLASSIFIER_STRENGTH,
                   unconditional_model: nn.Module | None = None) -> Guidance:
    """The sampler's guidance strategy for a protocol mode (``unconditional_model``: classifier guidance's separate
    unconditional denoiser; None = the sampled denoiser with its condition dropped)."""
    if name == "cfg":
        return ClassifierFreeGuidance(w=float(w))
    if name in ("none", "uncond"):  # uncond: no guidance term, and reconstruct() masks the condition out
        return NoGuidance()
    if name == "classifier":
        if regressor is None:
            raise ValueError("classifier guidance needs a regressor")
        return ClassifierGuidance(regressor, strength=float(strength), unconditional_model=unconditional_model)
    raise ValueError(f"unknown guidance {name!r}")


def all_sites_condition(scaled_site_dos: Sequence[np.ndarray], masked: bool = False) -> DOSCondition:
    """Condition of a batch where every atom is conditioned on its own scaled DOS: dos (N, 400), mask ones (N,);
    ``masked``: mask zeros instead (the model sees no condition)."""
    dos = torch.as_tensor(np.concatenate(list(scaled_site_dos), axis=0), dtype=torch.float32)
    return DOSCondition(dos=dos, mask=torch.zeros(dos.shape[0]) if masked else torch.ones(dos.shape[0]))


def setting_stream(t_start: int) -> str:
    """The seed stream of a t_start; shared by all guidance modes, so they start from the same noised templates."""
    return f"reconstruct-t{int(t_start)}"


def reconstruct(
    model: nn.Module,
    diffusion: JointDiffusion,
    templates: Sequence[Crystal],
    scaled_site_dos: Sequence[np.ndarray],
    *,
    t_start: int,
    guidance_name: str,
    guidance: Guidance,
    step_lr: float = 5e-6,
    seed: int = 0,
    batch_size: int = 32,
    mask_all: bool = False,
) -> ReconstructionRun:
    """Generate one structure per template (see the module docstring).

    Args:
        templates: the ground-truth structures (atom counts and, for t_start < T, the start).
        scaled_site_dos: per template, its (n_atoms, 400) site DOS scaled with the DENOISER's scaler.
        t_start: 1..T; batch k uses the generator ``shard_seed(seed, setting_stream(t_start), k)``.
        mask_all: mask the condition out whatever the guidance (the ``masked`` negative control).
    """
    if len(templates) != len(scaled_site_dos):
        raise ValueError(f"{len(templates)} templates but {len(scaled_site_dos)} DOS arrays")
    sampler = PredictorCorrectorSampler(model, diffusion, step_lr=float(step_lr))

    def make_batch(rows: range, gen: torch.Generator):
        clean = diffusion.clean_state(collate_crystals(list(templates[rows.start : rows.stop])).to(diffusion.device))
        start = template_start(diffusion, clean, int(t_start), gen)
        return start, all_sites_condition(scaled_site_dos[rows.start : rows.stop], masked=mask_all or guidance_name == "uncond")

    t0 = time.perf_counter()
    done = sample_in_batches(sampler, guidance, make_batch, n=len(templates), batch_size=batch_size, seed=int(seed),
                             stream=setting_stream(t_start), tolerate=(RuntimeError, ValueError, FloatingPointError),
                             label=f"{guidance_name}, t_start {t_start}")
    return ReconstructionRun(guidance_name, int(t_start), done.crystals, time.perf_counter() - t0, done.model_calls,
                             done.batch_seeds, done.failed_batches)
