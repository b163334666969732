"""Frechet cell filter: positions and cell of one structure as one set of optimizer coordinates.

This is the same parametrisation as ASE's ``FrechetCellFilter`` (ase 3.23+), written for our batched FIRE:

* deformation gradient ``F`` maps the starting cell to the current one, ``cell = cell0 @ F.T``;
* the optimizer coordinates are an (n + 3, 3) array ``q``: rows ``0..n-1`` are the atom positions pulled
  back to the starting cell, ``x = r @ F^-T`` (Å), rows ``n..n+2`` are ``c * log(F)`` with
  ``c = exp_cell_factor`` (default n, the number of atoms; dimensionless scaled log-strain);
* the generalised forces are ``f @ F`` for atoms (eV/Å) and, for the cell,
  ``D log(F) E = L_exp(log F)^* [virial @ F^-T] / c`` with ``virial = -V * stress`` (eV), where
  ``L_exp(A)^*`` is the adjoint of the Frechet derivative of the matrix exponential; it equals
  ``L_exp(A^T)`` so one ``scipy.linalg.expm_frechet`` call replaces ASE's nine directional ones.

ASE recomputes ``log(F)`` from the cell with ``logm`` every step; we keep ``A = log F`` as the state (it
starts at 0), which is the same number on the principal branch. ASE's rows carry an extra constant
``c * log(n) * I`` that never changes the FIRE steps or the convergence test, so trajectories match
ASE's step for step (checked in ``tests/test_relax_batched_fire.py``).

The convergence criterion is ASE's: the largest row norm of the generalised forces (atoms and the three
scaled cell rows) below ``fmax``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm, expm_frechet


@dataclass
class FrechetCellCoordinates:
    """Optimizer coordinates of one structure.

    cell0: (3, 3) starting lattice (rows, Å); q: (n + 3, 3) coordinates as described in the module docstring.
    """

    cell0: np.ndarray
    q: np.ndarray
    exp_cell_factor: float

    @classmethod
    def start(cls, positions: np.ndarray, cell: np.ndarray, exp_cell_factor: float | None = None) -> "FrechetCellCoordinates":
        pos = np.asarray(positions, dtype=float)
        n = len(pos)
        q = np.zeros((n + 3, 3))
        q[:n] = pos  # F = I at the start
        return cls(np.array(cell, dtype=float), q, float(n if exp_cell_factor is None else exp_cell_factor))

    @property
    def n_atoms(self) -> int:
        return self.q.shape[0] - 3

    def log_deformation(self) -> np.ndarray:
        return self.q[self.n_atoms :] / self.exp_cell_factor

    def deformation(self) -> np.ndarray:
        return expm(self.log_deformation())

    def positions_and_cell(self) -> tuple[np.ndarray, np.ndarray]:
        """Current Cartesian positions (n, 3) Å and cell (3, 3) Å."""
        f = self.deformation()
        return self.q[: self.n_atoms] @ f.T, self.cell0 @ f.T

    def generalized_forces(self, forces: np.ndarray, stress: np.ndarray, volume: float) -> np.ndarray:
        """(n + 3, 3) forces on the coordinates ``q`` from atom forces (n, 3) eV/Å and stress (3, 3) eV/Å^3."""
        a = self.log_deformation()
        f = expm(a)
        virial = -volume * np.asarray(stress, dtype=float)
        cell_gradient = virial @ np.linalg.inv(f.T)
        log_force = expm_frechet(a.T, cell_gradient, compute_expm=False)
        out = np.empty_like(self.q)
        out[: self.n_atoms] = np.asarray(forces, dtype=float) @ f
        out[self.n_atoms :] = log_force / self.exp_cell_factor
        return out


def max_row_norm(generalized_forces: np.ndarray) -> float:
    """ASE's convergence measure: the largest norm of a row (atom or scaled cell row), eV/Å."""
    return float(np.sqrt((generalized_forces**2).sum(axis=1).max()))
