"""The one-at-a-time reference path: ASE ``FIRE`` on ``FrechetCellFilter``, one structure after another.

This is how Matbench Discovery relaxes (ASE FIRE + FrechetCellFilter) and what
:mod:`dosmatgen.relax.batched_fire` reproduces step for step in a batch. It is used by tests and by
``benchmarks/relax_batched.py``; production code uses the batched relaxer.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.relax.result import CONVERGED, FAILED, NOT_CONVERGED, RelaxResult


def relax_one_ase(crystal: Crystal, calculator, fmax: float = 0.05, max_steps: int = 500, index: int = 0) -> RelaxResult:
    """Relax one crystal with ASE FIRE + FrechetCellFilter using an ASE ``calculator``.

    Energies in eV; ``steps`` is ASE's ``nsteps``; convergence as ASE (largest filter-force row < fmax).
    An exception from the calculator marks the result ``failed`` with the message.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    atoms = crystal.to_ase()
    atoms.calc = calculator
    result = RelaxResult(index=index, initial=crystal)
    try:
        result.energy_initial = float(atoms.get_potential_energy())
        filtered = FrechetCellFilter(atoms)
        opt = FIRE(filtered, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        result.energy_relaxed = float(atoms.get_potential_energy())
        result.steps = int(opt.nsteps)
        result.fmax = float(np.sqrt((filtered.get_forces() ** 2).sum(axis=1).max()))
        result.relaxed = Crystal.from_ase(atoms, metadata=dict(crystal.metadata))
        result.converged = converged
        result.status = CONVERGED if converged else NOT_CONVERGED
        if not converged:
            result.reason = f"not converged after {result.steps} steps"
    except Exception as exc:  # noqa: BLE001 - reference path: record and go on
        result.status, result.reason = FAILED, f"{type(exc).__name__}: {exc}"
    return result


def relax_sequential_ase(
    crystals: Sequence[Crystal], calculator, fmax: float = 0.05, max_steps: int = 500
) -> tuple[list[RelaxResult], float]:
    """Relax crystals one at a time with the same ``calculator``; returns (results, wall seconds)."""
    start = time.perf_counter()
    results = [relax_one_ase(c, calculator, fmax=fmax, max_steps=max_steps, index=i) for i, c in enumerate(crystals)]
    return results, time.perf_counter() - start
