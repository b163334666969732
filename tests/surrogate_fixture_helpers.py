"""Test helper: a small synthetic DOS dataset store written on the fly (no shared data).

Two-atom cells of a few element pairs with a lattice constant that varies per structure. The site DOS of an
atom is a Gaussian whose centre depends on its element AND on the lattice constant, so a per-element mean
cannot fit it exactly but a structure-aware model can.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.arrays import DatasetArrays
from dosmatgen.data.store import write_store
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.dos.scaler import PerBinStandardScaler

PAIRS = [(11, 17), (12, 8), (19, 35)]


def site_row(z: int, a: float) -> np.ndarray:
    e = SITE_GRID.energies
    centre = -6.0 + 0.2 * (z % 20) + 3.0 * (a - 4.0)
    return np.exp(-0.5 * ((e - centre) / 0.6) ** 2) + 0.5 * np.exp(-0.5 * ((e - centre - 7.0) / 0.8) ** 2)


def synthetic_crystals(n: int) -> list[Crystal]:
    out = []
    for i in range(n):
        za, zb = PAIRS[i % len(PAIRS)]
        a = 3.6 + 0.8 * ((i * 7) % n) / n
        out.append(Crystal([za, zb], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * a))
    return out


def write_synthetic_dos_store(path: str | Path, n: int = 36) -> Path:
    crystals = synthetic_crystals(n)
    site = np.concatenate([[site_row(int(z), c.lattice[0, 0]) for z in c.atomic_numbers] for c in crystals]).astype(np.float32)
    e = TOTAL_GRID.energies
    total = np.stack([np.interp(e, SITE_GRID.energies, site[2 * i : 2 * i + 2].mean(axis=0)) for i in range(n)]).astype(np.float32)
    split = np.array([(0, 0, 0, 1, 2)[i % 5] for i in range(n)], dtype=np.int8)
    offsets = np.arange(0, 2 * n + 1, 2)
    data = DatasetArrays(
        ids=[f"syn-{i:03d}" for i in range(n)],
        sources=["synthetic"] * n,
        offsets=offsets,
        atomic_numbers=np.concatenate([c.atomic_numbers for c in crystals]).astype(np.int16),
        frac_coords=np.concatenate([c.frac_coords for c in crystals]),
        lattice=np.stack([c.lattice for c in crystals]),
        energy=np.full(n, np.nan),
        efermi=np.zeros(n),
        split=split,
        site_dos=site,
        total_dos=total,
    )
    train_atoms = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in np.flatnonzero(split == 0)])
    scalers = {
        "site": PerBinStandardScaler().fit(site[train_atoms].astype(np.float16).astype(np.float64)).to_arrays(),
        "total": PerBinStandardScaler().fit(total[split == 0].astype(np.float16).astype(np.float64)).to_arrays(),
    }
    attrs = {"grids": {"site": SITE_GRID.to_dict(), "total": TOTAL_GRID.to_dict()}, "provenance": "synthetic test store"}
    return write_store(path, data, attrs=attrs, scalers=scalers)
