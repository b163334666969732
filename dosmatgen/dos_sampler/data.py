"""Per-atom total DOS rows of a dataset store, by split, for the DOSSampler.

The store's ``total_dos`` array is GPAW's total DOS divided by the number of atoms on TOTAL_GRID
(states/eV/atom; see dosmatgen/resources/data/README.md). It is used as is: summing the site-projected DOS
instead would count the PAW projections, whose integral below E_F is a median 1.35x that of the total DOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosmatgen.data import schema as S
from dosmatgen.data.store import DatasetStore
from dosmatgen.errors import StoreError


@dataclass(frozen=True)
class DosSplit:
    """``dos`` (n, 256) float64 states/eV/atom and the store ``ids`` of one split."""

    dos: np.ndarray
    ids: list[str]


def load_split(store_path: str | Path, split: str) -> DosSplit:
    if split not in S.SPLIT_CODES:
        raise StoreError(f"unknown split {split!r}; the store has {', '.join(S.SPLIT_NAMES)}")
    store = DatasetStore.open(store_path)
    if not store.has_dos:
        raise StoreError(f"{store_path} has no DOS features (has_dos = false)")
    idx = store.split_indices(split)
    dos = np.asarray(store.to_memory().total_dos, dtype=np.float64)[idx]
    keep = dos.max(axis=1) > 0
    if not keep.all():
        raise StoreError(f"{store_path}: split {split!r} has {int((~keep).sum())} all-zero total-DOS rows")
    return DosSplit(dos=dos, ids=[store.ids[i] for i in idx])
