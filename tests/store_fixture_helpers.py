"""Test helpers for the dataset store tests: small synthetic inputs, generated on the fly (no shared data).

* :func:`write_synthetic_gpaw_npz` writes a file in the ``dos-gpaw-v1`` layout (flat arrays plus offsets,
  s/p/d site DOS and a total DOS on the 401-point -10..10 eV grid) with physically shaped Gaussian bands.
* :func:`synthetic_record` builds one DOSRecord directly, for feeding the builder bad records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import GPAW_V1_GRID
from dosmatgen.dos.record import DOSRecord

ELEMENT_PAIRS = [(11, 17), (12, 8), (20, 8), (13, 15), (31, 33), (3, 9), (19, 35), (38, 16), (30, 34), (48, 52)]


def _gaussians(energies: np.ndarray, centres: list[float], width: float, height: float) -> np.ndarray:
    return sum(height * np.exp(-0.5 * ((energies - c) / width) ** 2) for c in centres)


def synthetic_crystal(i: int) -> Crystal:
    """Rocksalt-like 2-atom (even i) or CsCl-like 2-atom (odd i) cell with lattice constant varying with i."""
    za, zb = ELEMENT_PAIRS[i % len(ELEMENT_PAIRS)]
    a = 3.8 + 0.05 * (i % 17)
    if i % 2 == 0:
        lattice = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    else:
        lattice = a * np.eye(3)
    return Crystal(np.array([za, zb]), np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), lattice)


def synthetic_site_pdos(i: int, num_atoms: int, energies: np.ndarray) -> np.ndarray:
    """(num_atoms, 3, n_E) s/p/d DOS: valence bands below E_F, conduction bands above, shifted with i."""
    rng = np.random.default_rng(i)
    out = np.zeros((num_atoms, 3, energies.size))
    for a in range(num_atoms):
        for l in range(3):
            centres = list(rng.uniform(-8.0, -0.5, size=2)) + list(rng.uniform(0.5 + 0.1 * (i % 5), 8.0, size=1))
            out[a, l] = _gaussians(energies, centres, 0.3 + 0.1 * l, 0.5 + 0.5 * rng.random())
    return out


def write_synthetic_gpaw_npz(path: str | Path, n: int = 12, start: int = 0, prefix: str = "syn") -> list[str]:
    """Write ``n`` synthetic structures (ids ``{prefix}-{start+i:04d}``) in the dos-gpaw-v1 layout; return the ids."""
    energies = GPAW_V1_GRID.energies.astype(np.float32)
    ids, lattices, z, x, pdos, total, nat = [], [], [], [], [], [], []
    for k in range(n):
        i = start + k
        c = synthetic_crystal(i)
        p = synthetic_site_pdos(i, c.num_atoms, energies.astype(np.float64))
        ids.append(f"{prefix}-{i:04d}")
        lattices.append(c.lattice)
        z.append(c.atomic_numbers)
        x.append(c.frac_coords)
        pdos.append(p)
        total.append(0.8 * p.sum(axis=(0, 1)))
        nat.append(c.num_atoms)
    offsets = np.concatenate([[0], np.cumsum(nat)])
    arrays = dict(
        ids=np.array(ids),
        sources=np.array(["synthetic"] * n),
        num_atoms=np.array(nat, dtype=np.int32),
        offsets=offsets.astype(np.int64),
        lattice=np.stack(lattices),
        atomic_numbers=np.concatenate(z).astype(np.int16),
        frac_coords=np.concatenate(x),
        energy_grid=energies,
        site_pdos=np.concatenate(pdos).astype(np.float32),
        total_dos=np.stack(total).astype(np.float32),
        energy=-np.arange(n, dtype=np.float64) - 5.0,
        efermi=np.linspace(1.0, 3.0, n),
        n_electrons=np.full(n, 16.0),
        n_ibz_kpoints=np.full(n, 10, dtype=np.int32),
        seconds=np.full(n, 1.5, dtype=np.float32),
        settings=np.array(json.dumps({"xc": "PBE", "synthetic": True})),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return ids


def synthetic_record(i: int, **changes) -> DOSRecord:
    """A valid DOSRecord (energies relative to E_F on the GPAW grid); ``changes`` override its fields."""
    c = synthetic_crystal(i)
    e = GPAW_V1_GRID.energies
    p = synthetic_site_pdos(i, c.num_atoms, e)
    fields = dict(id=f"rec-{i:04d}", source="synthetic", crystal=c, energies=e, site_dos=p,
                  total_dos=0.8 * p.sum(axis=(0, 1)), efermi=2.0, energy=-10.0 - i)
    fields.update(changes)
    return DOSRecord(**fields)
