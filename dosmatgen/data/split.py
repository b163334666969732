"""Deterministic train/val/test split by structure id.

Each id is hashed (SHA-256 of its UTF-8 bytes, salted) to a number ``u`` in [0, 1); ``u < 0.6`` is train,
``u < 0.8`` val, else test. A structure's split therefore depends only on its id: not on the order,
the number of structures or the machine.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np

from dosmatgen.data.schema import SPLIT_CODES

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


def id_unit_hash(structure_id: str, salt: str = "") -> float:
    """Map an id to [0, 1) with SHA-256 (first 8 bytes, big endian, divided by 2**64)."""
    digest = hashlib.sha256((salt + structure_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_codes(
    ids: Iterable[str], fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = ""
) -> np.ndarray:
    """(N,) int8 split codes (0 train, 1 val, 2 test) for ``ids``."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    edges = np.cumsum(f)[:2]
    u = np.array([id_unit_hash(i, salt) for i in ids], dtype=np.float64)
    return np.searchsorted(edges, u, side="right").astype(np.int8)


def split_code(name: str) -> int:
    try:
        return SPLIT_CODES[name]
    except KeyError:
        raise ValueError(f"unknown split {name!r}; expected one of {sorted(SPLIT_CODES)}") from None
