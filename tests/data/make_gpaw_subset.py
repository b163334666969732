"""Regenerate ``gpaw_subset/`` (a small test copy of dos-gpaw-v1) from the full dataset.

Usage (a maintainer step, never run by the tests)::

    python tests/data/make_gpaw_subset.py /path/to/dos-gpaw-v1

Copies the rows listed in SUBSET_IDS verbatim (same keys, dtypes and values) into ``gpaw_subset/dataset.npz``
and the failures.jsonl lines of FAILURE_IDS into ``gpaw_subset/failures.jsonl``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SUBSET_IDS = [
    "target-Au3Ni", "target-IrO2", "dcdft-S", "dcdft-Si", "B2-AlGa", "rocksalt-AgO", "zincblende-AlSb",
    "fluorite-BaF2", "L12-Ag3Ga", "rutile-GeO2", "perov5-10028", "mattergen-mattergen-chemical_system-HfZnN2",
]  # fmt: skip
FAILURE_IDS = ["dcdft-Ar", "mattergen-mattergen-dft_mag_density-Fe6CoH"]
PER_STRUCTURE = ("ids", "sources", "num_atoms", "lattice", "total_dos", "energy", "efermi", "n_electrons", "n_ibz_kpoints", "seconds")


def subset(src: dict[str, np.ndarray], ids: list[str]) -> dict[str, np.ndarray]:
    all_ids = [str(x) for x in src["ids"]]
    rows = [all_ids.index(i) for i in ids]
    off = src["offsets"]
    sites = np.concatenate([np.arange(off[r], off[r + 1]) for r in rows])
    out = {k: src[k][rows] for k in PER_STRUCTURE}
    out["offsets"] = np.concatenate([[0], np.cumsum(src["num_atoms"][rows])]).astype(src["offsets"].dtype)
    for k in ("atomic_numbers", "frac_coords", "site_pdos"):
        out[k] = src[k][sites]
    out["energy_grid"] = src["energy_grid"]
    out["settings"] = src["settings"]
    return out


def main(dataset_dir: str) -> None:
    root = Path(dataset_dir)
    here = Path(__file__).resolve().parent / "gpaw_subset"
    here.mkdir(exist_ok=True)
    with np.load(root / "dataset.npz", allow_pickle=False) as z:
        src = {k: z[k] for k in z.files}
    np.savez_compressed(here / "dataset.npz", **subset(src, SUBSET_IDS))
    lines = [ln for ln in (root / "failures.jsonl").read_text().splitlines() if json.loads(ln)["id"] in FAILURE_IDS]
    (here / "failures.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
