"""A cheap, deterministic stand-in for DFT: a model DOS computed from the structure in milliseconds.

NOT PHYSICS. It exists so that workflows that consume DFT results (the discovery loop, the screen's DFT stage) can
be run end to end, tested and demonstrated without a DFT code. Every record says so: ``source = "analytic"`` and
``settings["code"] = "analytic (not DFT)"``.

The model: each site gets s, p and d Gaussian bands. A band's centre depends on the element (Z) and on the site's
mean distance to its 4 nearest neighbours (periodic images included); its width narrows as the neighbours move
apart. So the DOS changes with both composition and geometry, deterministically, and a relaxed structure has a
different DOS than the sampled one. E_F is 0 on the returned grid; the "energy" is a smooth pair sum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTCalculationError, DFTEngine
from dosmatgen.dos.grid import GPAW_V1_GRID
from dosmatgen.dos.record import DOSRecord

#: band heights of s, p and d (states/eV at the peak)
_HEIGHTS = (0.3, 0.6, 2.0)


def neighbour_distances(crystal: Crystal, k: int = 4) -> np.ndarray:
    """(n_atoms, k) distances (Å) to each site's k nearest neighbours over the 3x3x3 periodic images."""
    shifts = np.array([[i, j, l] for i in (-1, 0, 1) for j in (-1, 0, 1) for l in (-1, 0, 1)], dtype=np.float64)
    x = np.asarray(crystal.frac_coords, dtype=np.float64)
    lat = np.asarray(crystal.lattice, dtype=np.float64)
    d = x[None, :, None, :] - x[:, None, None, :] + shifts[None, None, :, :]
    dist = np.linalg.norm(d @ lat, axis=-1).reshape(x.shape[0], -1)
    dist[dist < 1e-6] = np.inf  # the site itself
    return np.sort(dist, axis=1)[:, :k]


class AnalyticEngine(DFTEngine):
    """Model DOS (see the module docstring). ``width_ev``: band width at a 2.5 Å neighbour distance."""

    name = "analytic"

    def __init__(self, width_ev: float = 0.6):
        if not width_ev > 0:
            raise ValueError(f"width_ev must be > 0, got {width_ev}")
        self.width_ev = float(width_ev)

    def config(self) -> dict[str, Any]:
        return {"width_ev": self.width_ev}

    def settings(self) -> dict[str, Any]:
        return {"code": "analytic (not DFT)", "width_ev": self.width_ev}

    def check_available(self) -> None:
        return None

    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        near = neighbour_distances(crystal)
        if not np.all(np.isfinite(near)) or near.min() < 0.5:
            raise DFTCalculationError("bad_geometry", f"atoms closer than 0.5 Å (min {near.min():.3f} Å)")
        e = GPAW_V1_GRID.energies
        mean_d = near.mean(axis=1)
        site = np.zeros((crystal.num_atoms, 3, e.size))
        for a, z in enumerate(np.asarray(crystal.atomic_numbers)):
            width = self.width_ev * (2.5 / mean_d[a]) ** 2
            for l, height in enumerate(_HEIGHTS):
                centre = -8.0 + ((int(z) * (l + 3)) % 17) * 0.6 + 1.5 * (mean_d[a] - 2.5)
                site[a, l] = height * np.exp(-0.5 * ((e - centre) / width) ** 2)
        energy = float(-np.sum(np.exp(-(near - 2.5) ** 2)))
        (Path(workdir) / "analytic.log").write_text(f"{id}: analytic model DOS (not DFT)\n")
        return DOSRecord(id=id, source="analytic", crystal=crystal, energies=e, site_dos=site,
                         total_dos=site.sum(axis=(0, 1)), efermi=0.0, energy=energy,
                         metadata={"n_electrons": float(np.sum(crystal.atomic_numbers)), "n_ibz_kpoints": 1,
                                   "seconds": 0.0, "settings": self.settings()}).validate(check_geometry=False)
