"""Energy grids. Every DOS in dosmatgen lives on a declared grid of energies relative to E_F (eV)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EnergyGrid:
    """``n`` equally spaced energies from ``emin`` to ``emax`` inclusive (``np.linspace``), in eV relative to E_F."""

    emin: float
    emax: float
    n: int

    def __post_init__(self) -> None:
        if self.n < 2 or not self.emax > self.emin:
            raise ValueError(f"invalid energy grid {self}")

    @property
    def energies(self) -> np.ndarray:
        return np.linspace(self.emin, self.emax, self.n)

    @property
    def step(self) -> float:
        return (self.emax - self.emin) / (self.n - 1)

    def to_dict(self) -> dict:
        return {"emin": float(self.emin), "emax": float(self.emax), "n": int(self.n)}

    @classmethod
    def from_dict(cls, d: dict) -> "EnergyGrid":
        return cls(float(d["emin"]), float(d["emax"]), int(d["n"]))

    def window_mask(self, lo: float, hi: float) -> np.ndarray:
        """Boolean mask of grid points with lo <= E <= hi."""
        e = self.energies
        return (e >= lo - 1e-9) & (e <= hi + 1e-9)


#: DOSMatGen site-level features: 400 points on [-10, 10] eV (MatDeepLearn recipe).
SITE_GRID = EnergyGrid(-10.0, 10.0, 400)
#: DOS-intermediated crystal-level features: 256 points on [E_F-10, E_F+10] eV; E_F lies between bins 127 and 128.
TOTAL_GRID = EnergyGrid(-10.0, 10.0, 256)
#: The grid of the bundled GPAW data (dos-gpaw-v1): -10..10 eV, step 0.05 eV.
GPAW_V1_GRID = EnergyGrid(-10.0, 10.0, 401)
