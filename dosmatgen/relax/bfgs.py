"""BFGS quasi-Newton steps for one structure (the update of ASE's ``ase.optimize.BFGS``, defaults alpha 70, maxstep 0.2).

The state is an approximate Hessian ``H`` of the structure's coordinates (atoms and Frechet cell rows together,
flattened), started as ``alpha * I`` (eV/Å²). Each call takes the forces at the current coordinates:

1. with the previous coordinates and forces, the rank-two BFGS update
   ``H -= (Δf Δfᵀ) / (Δr·Δf) + (H Δr)(H Δr)ᵀ / (Δr·H Δr)`` (skipped when the coordinates did not move);
2. the Newton step on the absolute eigenvalues, ``Δr = V (Vᵀ f / |ω|)`` with ``H = V diag(ω) Vᵀ``, so a
   negative curvature still gives a step along the force;
3. if the longest per-row step exceeds ``maxstep`` (Å), the whole step is scaled down to it.

Used with the same coordinates as :class:`~dosmatgen.relax.fire.FIREState`, a batch of structures each follows
the path ASE's ``BFGS(FrechetCellFilter(atoms))`` would give it alone (``tests/test_relax_batched_bfgs.py``).
On the relaxation benchmark set it needs fewer force evaluations than FIRE (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BFGSParameters:
    """ASE's BFGS defaults: initial Hessian ``alpha * I`` in eV/Å², longest row step ``maxstep`` in Å."""

    alpha: float = 70.0
    maxstep: float = 0.2


class BFGSState:
    """Approximate Hessian and the previous point of one structure."""

    def __init__(self, params: BFGSParameters = BFGSParameters()) -> None:
        self.params = params
        self.hessian: np.ndarray | None = None
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def _update(self, r: np.ndarray, f: np.ndarray) -> None:
        if self.hessian is None:
            self.hessian = np.eye(r.size) * self.params.alpha
            return
        r0, f0 = self.previous
        dr = r - r0
        if np.abs(dr).max() < 1e-7:
            return
        df = f - f0
        hdr = self.hessian @ dr
        self.hessian = self.hessian - np.outer(df, df) / float(dr @ df) - np.outer(hdr, hdr) / float(dr @ hdr)

    def displacement(self, forces: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
        """The step to take from ``coordinates`` (n_rows, 3) given the ``forces`` there (same shape)."""
        r = np.asarray(coordinates, dtype=float).reshape(-1)
        f = np.asarray(forces, dtype=float).reshape(-1)
        self._update(r, f)
        omega, vectors = np.linalg.eigh(self.hessian)
        step = (vectors @ ((f @ vectors) / np.abs(omega))).reshape(-1, 3)
        longest = float(np.sqrt((step**2).sum(axis=1)).max())
        if longest > self.params.maxstep:
            step = step * (self.params.maxstep / longest)
        self.previous = (r.copy(), f.copy())
        return step
