"""The one batch loop around the sampler, shared by ``dosmatgen sample`` (:func:`dosmatgen.sampling.generate.generate`)
and the evaluation's reconstruction runs (:func:`dosmatgen.evaluation.reconstruction.reconstruct`).

Rows ``0..n`` are cut into batches of ``batch_size``; batch k draws every random number from its own generator
seeded with ``shard_seed(seed, stream, k)`` (the run store's rule), so a batch is reproducible on its own and
results do not depend on the order batches run in. The caller builds each batch's start and condition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.runstore.seeds import shard_seed
from dosmatgen.sampling.guidance import Guidance
from dosmatgen.sampling.sampler import PredictorCorrectorSampler, SamplingOutput
from dosmatgen.sampling.start import SamplingStart
from dosmatgen.sampling.trajectory import Trajectory

log = logging.getLogger(__name__)

#: ``make_batch(rows, generator) -> (start, condition)`` for the rows of one batch
BatchBuilder = Callable[[range, torch.Generator], tuple[SamplingStart, DOSCondition | None]]


@dataclass
class BatchedSamples:
    """``crystals[i]`` is row i, or None when its output was not finite (or its batch failed)."""

    crystals: list[Crystal | None] = field(default_factory=list)
    batch_seeds: list[int] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)
    model_calls: int = 0
    #: one message per batch that raised one of the ``tolerate`` errors (its rows are None)
    failed_batches: list[str] = field(default_factory=list)


def output_to_crystals(out: SamplingOutput) -> list[Crystal | None]:
    z = out.atomic_numbers.cpu().numpy()
    x = out.state.frac_coords.detach().cpu().double().numpy()
    lat = out.state.lattice.detach().cpu().double().numpy()
    ptr = np.concatenate([[0], np.cumsum(out.state.num_atoms.cpu().numpy())])
    crystals: list[Crystal | None] = []
    for i in range(len(ptr) - 1):
        try:
            crystals.append(Crystal(z[ptr[i] : ptr[i + 1]], x[ptr[i] : ptr[i + 1]], lat[i]))
        except InvalidRecordError:
            crystals.append(None)
    return crystals


def sample_in_batches(sampler: PredictorCorrectorSampler, guidance: Guidance, make_batch: BatchBuilder, *, n: int,
                      batch_size: int, seed: int, stream: str, constraints: Sequence = (),
                      record_trajectories: bool = False, tolerate: tuple[type[BaseException], ...] = (),
                      label: str = "", log_progress: bool = False) -> BatchedSamples:
    """Sample ``n`` rows batch by batch. A batch raising one of ``tolerate`` is recorded in ``failed_batches`` and
    its rows count as invalid (one bad batch never ends an evaluation); other errors propagate."""
    device = sampler.diffusion.device
    result = BatchedSamples()
    for k, lo in enumerate(range(0, n, batch_size)):
        rows = range(lo, min(lo + batch_size, n))
        seed_k = shard_seed(int(seed), stream, k)
        result.batch_seeds.append(seed_k)
        gen = torch.Generator(device=device).manual_seed(seed_k)
        try:
            start, cond = make_batch(rows, gen)
            out = sampler.run(start, cond, guidance, constraints, gen, record_trajectory=record_trajectories)
        except tolerate as exc:
            msg = f"batch {k}{f' ({label})' if label else ''}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("sampling failed, %d structures counted invalid: %s", len(rows), msg)
            result.failed_batches.append(msg)
            result.crystals.extend([None] * len(rows))
            continue
        result.model_calls += out.model_calls
        result.crystals.extend(output_to_crystals(out))
        if out.trajectory is not None:
            result.trajectories.append(out.trajectory)
        if log_progress:
            log.info("batch %d: %d/%d crystals sampled", k, len(result.crystals), n)
    return result
