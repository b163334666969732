"""Batched relaxation: FIRE (or BFGS) over atom positions AND cell for many structures, one MLFF call per step.

Algorithm (per structure it is ASE's ``FIRE(FrechetCellFilter(atoms))``, see :mod:`.fire` and
:mod:`.cell_filter`; with ``optimizer="bfgs"`` ASE's ``BFGS(FrechetCellFilter(atoms))``, :mod:`.bfgs`):

1. Up to ``batch_size`` structures are *in flight*. Each optimizer step makes ONE
   :meth:`MLFF.compute` call with the current geometry of every structure in flight.
2. Each structure then checks its own convergence (largest generalised-force row < ``fmax``) and its own
   step budget (``max_steps``), and takes its own FIRE step.
3. A structure that converged, ran out of steps or failed leaves the batch, and the next waiting one
   takes its place in the next call (a queue), so the batch stays full.

Failure isolation: a structure is rejected before any MLFF call (:mod:`.prefilter`: overlapping atoms,
absurd volume, unsupported elements), or flagged ``failed`` during the run with a reason: the backend
could not featurise it, non-finite energy/forces/stress, the cell volume changed by more than
``max_volume_change`` times, or two atoms came closer than ``min_distance`` (checked every
``check_every`` steps and at the end). If the backend raises for the whole batch, the batch is split in
halves and re-evaluated until the culprit is alone (only then are there extra calls); the others go on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.relax.bfgs import BFGSParameters, BFGSState
from dosmatgen.relax.cell_filter import FrechetCellCoordinates, max_row_norm
from dosmatgen.relax.fire import FIREParameters, FIREState
from dosmatgen.relax.mlff import MLFF, MLFFOutput
from dosmatgen.relax.prefilter import PrefilterSettings, rejection
from dosmatgen.relax.result import CONVERGED, FAILED, NOT_CONVERGED, REJECTED, RelaxResult, TrajectoryFrame

log = logging.getLogger(__name__)

#: the per-structure optimizers :class:`RelaxSettings` can name
OPTIMIZERS = ("fire", "bfgs")


@dataclass(frozen=True)
class RelaxSettings:
    """Settings of :class:`BatchedRelaxer`.

    fmax: eV/Å, convergence threshold on the largest generalised-force row (ASE's criterion).
    max_steps: optimizer steps per structure (evaluations = steps + 1).
    batch_size: structures in flight per MLFF call.
    max_volume_change: flag a structure whose volume leaves [V0 / x, V0 * x].
    min_distance: Å, flag a structure whose closest pair falls below this during the run.
    check_every: steps between closest-pair checks (it costs a neighbour search).
    trajectory: keep every evaluated geometry.
    optimizer: "fire" (ASE's FIRE, the default) or "bfgs" (ASE's BFGS: fewer evaluations on the benchmark set).
    """

    fmax: float = 0.05
    max_steps: int = 500
    batch_size: int = 64
    fire: FIREParameters = field(default_factory=FIREParameters)
    prefilter: PrefilterSettings = field(default_factory=PrefilterSettings)
    max_volume_change: float = 4.0
    min_distance: float = 0.5
    check_every: int = 10
    trajectory: bool = False
    optimizer: str = "fire"
    bfgs: BFGSParameters = field(default_factory=BFGSParameters)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown relaxation optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")

    def new_optimizer(self) -> FIREState | BFGSState:
        """A fresh optimizer state for one structure."""
        return FIREState(self.fire) if self.optimizer == "fire" else BFGSState(self.bfgs)


def evaluate_isolating_failures(mlff: MLFF, numbers, positions, cells) -> tuple[MLFFOutput, int]:
    """``mlff.compute`` on the batch; if it raises, bisect until the failing structures are alone.

    Returns the output (failed structures get NaNs and an ``errors`` entry) and the number of calls made.
    """
    try:
        out = mlff.compute(numbers, positions, cells)
    except Exception as exc:  # noqa: BLE001 - the whole point is to keep the batch alive
        if len(numbers) == 1:
            return MLFFOutput.failed([len(numbers[0])], f"MLFF raised {type(exc).__name__}: {exc}"), 1
        half = len(numbers) // 2
        first, n1 = evaluate_isolating_failures(mlff, numbers[:half], positions[:half], cells[:half])
        second, n2 = evaluate_isolating_failures(mlff, numbers[half:], positions[half:], cells[half:])
        return MLFFOutput.concatenate([first, second]), 1 + n1 + n2
    if len(out.forces) != len(numbers):
        raise RuntimeError(f"{mlff.name} returned {len(out.forces)} results for {len(numbers)} structures")
    return out, 1


class _InFlight:
    """One structure being relaxed: its coordinates, FIRE state and bookkeeping."""

    def __init__(self, result: RelaxResult, settings: RelaxSettings) -> None:
        crystal = result.initial
        self.result = result
        self.settings = settings
        self.numbers = crystal.atomic_numbers
        self.coords = FrechetCellCoordinates.start(crystal.cart_coords, crystal.lattice)
        self.optimizer = settings.new_optimizer()
        self.volume0 = crystal.volume
        self.positions, self.cell = crystal.cart_coords, crystal.lattice
        if settings.trajectory:
            result.trajectory = []

    def _crystal(self) -> Crystal:
        frac = np.linalg.solve(self.cell.T, self.positions.T).T
        return Crystal(self.numbers, frac, self.cell, dict(self.result.initial.metadata))

    def _fail(self, kind: str, reason: str) -> bool:
        r = self.result
        r.status, r.failure, r.reason, r.converged = FAILED, kind, reason, False
        r.extra["last_energy"] = r.energy_relaxed
        r.energy_relaxed = float("nan")
        try:
            r.relaxed = self._crystal()
        except Exception:  # noqa: BLE001 - a broken geometry cannot become a Crystal
            r.relaxed = None
        return True

    def _collapsed(self) -> tuple[str, str] | None:
        try:
            dmin = self._crystal().min_interatomic_distance()
        except Exception as exc:  # noqa: BLE001
            return "geometry_invalid", f"geometry became invalid: {exc}"
        if dmin < self.settings.min_distance:
            return "atoms_collapsed", f"atoms collapsed: closest pair {dmin:.3f} A < {self.settings.min_distance} A"
        return None

    def update(self, energy: float, forces: np.ndarray, stress: np.ndarray, error: str | None) -> bool:
        """Take the evaluation at the current geometry; step or finish. Returns True when finished."""
        r, s = self.result, self.settings
        if error is not None:
            return self._fail("mlff_error", error)
        if not (np.isfinite(energy) and np.all(np.isfinite(forces)) and np.all(np.isfinite(stress))):
            return self._fail("nonfinite", "non-finite energy, forces or stress from the MLFF")
        if r.steps == 0:
            r.energy_initial = float(energy)
        r.energy_relaxed = float(energy)
        volume = float(abs(np.linalg.det(self.cell)))
        gforces = self.coords.generalized_forces(forces, stress, volume)
        r.fmax = max_row_norm(gforces)
        if r.trajectory is not None:
            r.trajectory.append(TrajectoryFrame(self._crystal(), float(energy), r.fmax))
        if r.fmax < s.fmax or r.steps >= s.max_steps:
            collapsed = self._collapsed()
            if collapsed:
                return self._fail(*collapsed)
            r.converged = r.fmax < s.fmax
            r.status = CONVERGED if r.converged else NOT_CONVERGED
            if not r.converged:
                r.reason = f"not converged after {r.steps} steps (fmax {r.fmax:.3g} eV/A)"
            r.relaxed = self._crystal()
            return True
        self.coords.q += self.optimizer.displacement(gforces, self.coords.q)
        r.steps += 1
        self.positions, self.cell = self.coords.positions_and_cell()
        if not (np.all(np.isfinite(self.positions)) and np.all(np.isfinite(self.cell))):
            return self._fail("geometry_invalid", "geometry became non-finite")
        ratio = abs(np.linalg.det(self.cell)) / self.volume0
        if not (1.0 / s.max_volume_change <= ratio <= s.max_volume_change):
            return self._fail("cell_exploded", f"cell exploded or collapsed: volume changed by a factor {ratio:.3g}")
        if r.steps % s.check_every == 0:
            collapsed = self._collapsed()
            if collapsed:
                return self._fail(*collapsed)
        return False


class BatchedRelaxer:
    """Relax structures with one MLFF call per optimizer step for all structures in flight.

    After :meth:`run`, ``n_calls`` is the number of MLFF calls and ``call_sizes`` the number of
    structures in each (both include the rare extra calls of failure bisection, counted in
    ``n_bisection_calls``).
    """

    def __init__(self, mlff: MLFF, settings: RelaxSettings = RelaxSettings(), progress: Callable[[int, int], None] | None = None) -> None:
        self.mlff = mlff
        self.settings = settings
        self.progress = progress
        self.n_calls = 0
        self.n_bisection_calls = 0
        self.call_sizes: list[int] = []
        self.wall_seconds = 0.0

    def run(self, crystals: Iterable[Crystal]) -> list[RelaxResult]:
        """Relax every crystal; results come back in input order, one per input."""
        s = self.settings
        results = [RelaxResult(index=i, initial=c) for i, c in enumerate(crystals)]
        queue = deque(results)
        in_flight: list[_InFlight] = []
        n_done = 0
        start = time.perf_counter()
        while queue or in_flight:
            while queue and len(in_flight) < s.batch_size:
                r = queue.popleft()
                rejected = rejection(r.initial, self.mlff.supported_elements, s.prefilter)
                if rejected is not None:
                    r.status, (r.failure, r.reason) = REJECTED, rejected
                    n_done += 1
                    continue
                in_flight.append(_InFlight(r, s))
            if not in_flight:
                break
            out, calls = evaluate_isolating_failures(
                self.mlff, [f.numbers for f in in_flight], [f.positions for f in in_flight], [f.cell for f in in_flight]
            )
            self.n_calls += calls
            self.n_bisection_calls += calls - 1
            self.call_sizes.append(len(in_flight))
            still = []
            for k, f in enumerate(in_flight):
                if f.update(float(out.energy[k]), out.forces[k], out.stress[k], out.errors.get(k)):
                    n_done += 1
                else:
                    still.append(f)
            in_flight = still
            if self.progress is not None:
                self.progress(n_done, len(results))
        self.wall_seconds = time.perf_counter() - start
        counts = {st: sum(r.status == st for r in results) for st in (CONVERGED, NOT_CONVERGED, FAILED, REJECTED)}
        log.info("relaxed %d structures with %s in %d MLFF calls, %.1f s: %s", len(results), self.mlff.name, self.n_calls, self.wall_seconds, counts)
        return results


def relax_batched(crystals: Sequence[Crystal], mlff: MLFF, settings: RelaxSettings = RelaxSettings()) -> list[RelaxResult]:
    """Convenience wrapper: ``BatchedRelaxer(mlff, settings).run(crystals)``."""
    return BatchedRelaxer(mlff, settings).run(crystals)
