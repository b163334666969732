"""Balanced shards: every shard of a run gets the same mix of candidate sizes.

Relaxation and sampling cost grow with the atom count, so a plan sorted by size (all 4-atom candidates first,
all 8-atom ones last) gives shards whose costs differ several-fold, and the last, largest shards keep a few
workers busy while the others idle. :func:`balanced_order` deals the sizes out round-robin, largest first, so
shard sizes and atom totals differ by at most one candidate's worth between shards.
"""

from __future__ import annotations

import numpy as np


def balanced_order(num_atoms: np.ndarray, shard_size: int) -> np.ndarray:
    """The same multiset of atom counts, reordered so that consecutive blocks of ``shard_size`` rows (the run's
    shards) each hold a near-equal mix of sizes. Deterministic (a stable sort, then round-robin over shards)."""
    num_atoms = np.asarray(num_atoms, dtype=np.int64)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    n = num_atoms.size
    n_shards = -(-n // shard_size)
    if n_shards <= 1:
        return num_atoms.copy()
    capacity = np.full(n_shards, shard_size)
    capacity[-1] = n - shard_size * (n_shards - 1)
    shards: list[list[int]] = [[] for _ in range(n_shards)]
    s = 0
    for value in num_atoms[np.argsort(-num_atoms, kind="stable")]:
        while len(shards[s]) >= capacity[s]:
            s = (s + 1) % n_shards
        shards[s].append(int(value))
        s = (s + 1) % n_shards
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in shards])
