"""The element vocabulary: atomic numbers 1..100, class index = Z - 1."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from pymatgen.core.periodic_table import Element

from dosmatgen.errors import InvalidRecordError

MAX_Z = 100
NUM_ELEMENT_CLASSES = MAX_Z


def symbol(z: int) -> str:
    return Element.from_Z(int(z)).symbol


def atomic_number(sym: str) -> int:
    try:
        return int(Element(sym).Z)
    except (ValueError, KeyError) as exc:
        raise InvalidRecordError(f"unknown element {sym!r}") from exc


def check_atomic_numbers(z: Iterable[int], max_z: int = MAX_Z) -> np.ndarray:
    """Return ``z`` as int64, raising InvalidRecordError for anything outside 1..max_z."""
    arr = np.asarray(list(z) if not isinstance(z, np.ndarray) else z)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer)):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise InvalidRecordError(f"atomic numbers must be integers, got {arr.tolist()}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 1) | (arr > max_z)]
    if bad.size:
        raise InvalidRecordError(f"unknown element: atomic number(s) {sorted(set(bad.tolist()))} outside 1..{max_z}")
    return arr


def to_class_index(z: np.ndarray) -> np.ndarray:
    return np.asarray(z, dtype=np.int64) - 1


def from_class_index(idx: np.ndarray) -> np.ndarray:
    return np.asarray(idx, dtype=np.int64) + 1
