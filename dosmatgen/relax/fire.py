"""FIRE (fast inertial relaxation engine, Bitzek et al., PRL 97, 170201 (2006)) for one structure.

The update is ASE's ``ase.optimize.FIRE`` (3.23+) with its defaults and ``downhill_check=False``, applied
to the whole coordinate array of one structure (atoms and cell rows together): the velocity mixing, the
time-step control and the ``maxstep`` cap act on that structure only, so every structure of a batch
follows exactly the path ASE would give it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FIREParameters:
    """ASE's FIRE defaults. ``dt`` and ``dtmax`` are in ASE's time units, ``maxstep`` in Å."""

    dt: float = 0.1
    maxstep: float = 0.2
    dtmax: float = 1.0
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    a_start: float = 0.1
    f_a: float = 0.99


class FIREState:
    """Velocity, time step and mixing parameter of one structure."""

    def __init__(self, params: FIREParameters = FIREParameters()) -> None:
        self.params = params
        self.velocity: np.ndarray | None = None
        self.dt = params.dt
        self.a = params.a_start
        self.n_positive = 0

    def displacement(self, forces: np.ndarray, coordinates: np.ndarray | None = None) -> np.ndarray:
        """Update the velocity with ``forces`` (same shape as the coordinates) and return the step to take.
        ``coordinates`` is unused (FIRE needs only the forces); it keeps one call shape with :class:`.bfgs.BFGSState`."""
        p = self.params
        if self.velocity is None:
            self.velocity = np.zeros_like(forces)
        else:
            vf = float(np.vdot(forces, self.velocity))
            if vf > 0.0:
                f_norm = np.sqrt(np.vdot(forces, forces))
                v_norm = np.sqrt(np.vdot(self.velocity, self.velocity))
                self.velocity = (1.0 - self.a) * self.velocity + self.a * forces / f_norm * v_norm
                if self.n_positive > p.n_min:
                    self.dt = min(self.dt * p.f_inc, p.dtmax)
                    self.a *= p.f_a
                self.n_positive += 1
            else:
                self.velocity[:] = 0.0
                self.a = p.a_start
                self.dt *= p.f_dec
                self.n_positive = 0
        self.velocity = self.velocity + self.dt * forces
        step = self.dt * self.velocity
        norm = float(np.sqrt(np.vdot(step, step)))
        if norm > p.maxstep:
            step = step * (p.maxstep / norm)
        return step
