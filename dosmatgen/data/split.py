"""Deterministic train/val/test split by structure id.

Each id is hashed (SHA-256 of its UTF-8 bytes, salted) to a number ``u`` in [0, 1); ``u < 0.6`` is train,
``u < 0.8`` val, else test. A structure's split therefore depends only on its id: not on the order,
the number of structures or the machine.

:func:`move_split_twins_to_train` then deduplicates across splits when a store is built: a val or test structure
with a StructureMatcher twin in another split joins the train split (issue 19), so the held-out splits hold no
near-copy of a training structure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from dosmatgen.data.schema import SPLIT_CODES

if TYPE_CHECKING:
    from dosmatgen.crystal import Crystal

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


# ---------------------------------------------------------------------------------------------- near-duplicates
#: StructureMatcher tolerances of the cross-split deduplication (pymatgen's defaults; ``scale=True``, so two
#: relaxations of one structure with slightly different volumes are twins)
TWIN_MATCHER = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0, "primitive_cell": True, "scale": True}


@dataclass(frozen=True)
class SplitMove:
    """A structure moved into the train split because a StructureMatcher twin of it lies in another split."""

    index: int
    from_split: str
    twin_index: int


def _composition_key(atomic_numbers: np.ndarray) -> tuple[tuple[int, int], ...]:
    z, counts = np.unique(np.asarray(atomic_numbers, dtype=np.int64), return_counts=True)
    g = int(np.gcd.reduce(counts)) if counts.size else 1
    return tuple((int(a), int(c // g)) for a, c in zip(z, counts))


def move_split_twins_to_train(crystals: Sequence[Crystal], split: np.ndarray,
                              matcher_kwargs: dict | None = None) -> tuple[np.ndarray, list[SplitMove]]:
    """Deduplicate across splits: structures with the same reduced composition that pymatgen's StructureMatcher
    matches (:data:`TWIN_MATCHER`) are twins; every group of twins (connected through matches, in any splits) that
    spans more than one split joins the train split. Returns the new (N,) split codes and the moves, in index order.

    Models trained on the old train split stay valid: a moved structure only leaves val/test (nothing they were
    trained on changes), and the evaluation splits lose their near-copies of training structures.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    split = np.asarray(split, dtype=np.int8)
    if len(crystals) != split.shape[0]:
        raise ValueError(f"{len(crystals)} structures but {split.shape[0]} split codes")
    matcher = StructureMatcher(**{**TWIN_MATCHER, **(matcher_kwargs or {})})
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(crystals):
        groups.setdefault(_composition_key(c.atomic_numbers), []).append(i)
    parent = list(range(len(crystals)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    structures: dict[int, Any] = {}
    for members in groups.values():
        if len(members) < 2 or len({int(split[i]) for i in members}) < 2:
            continue  # all in one split: nothing can cross
        for i in members:
            structures[i] = crystals[i].to_pymatgen()
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                if root(a) != root(b) and matcher.fit(structures[a], structures[b]):
                    parent[root(b)] = root(a)
    by_root: dict[int, list[int]] = {}
    for i in structures:
        by_root.setdefault(root(i), []).append(i)
    new = split.copy()
    moves: list[SplitMove] = []
    train = SPLIT_CODES["train"]
    names = {code: name for name, code in SPLIT_CODES.items()}
    for members in by_root.values():
        if len({int(split[i]) for i in members}) < 2:
            continue
        in_train = [i for i in members if split[i] == train]
        for i in sorted(members):
            if split[i] != train:
                twin = min(in_train) if in_train else min(j for j in members if j != i)
                moves.append(SplitMove(i, names[int(split[i])], twin))
                new[i] = train
    moves.sort(key=lambda m: m.index)
    return new, moves


def split_moves_summary(moves: Sequence[SplitMove], ids: Sequence[str]) -> dict[str, Any]:
    """JSON-ready record of a deduplication (store attrs ``split_dedup``): matcher, counts per split, moved ids."""
    counts = {name: sum(m.from_split == name for m in moves) for name in ("val", "test")}
    return {"rule": "same reduced composition + StructureMatcher twin in another split -> train",
            "matcher": dict(TWIN_MATCHER), "moved": counts, "num_moved": len(moves),
            "moves": [{"id": ids[m.index], "from": m.from_split, "twin": ids[m.twin_index]} for m in moves]}
