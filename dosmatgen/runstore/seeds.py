"""Per-shard seeds: a function of (run seed, target id, shard index) only.

Because the seed of a shard never depends on which actor or worker runs it, nor on how many there are,
a CPU run is bit-reproducible whatever the actor count. (On GPUs, nondeterministic kernels can still
change the last bits.)
"""

from __future__ import annotations

import hashlib

import numpy as np


def target_key(target_id: str) -> int:
    """A stable 32-bit integer for a target id (blake2b; Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(target_id.encode("utf-8"), digest_size=4).digest(), "little")


def shard_seed_sequence(run_seed: int, target_id: str, shard: int) -> np.random.SeedSequence:
    if run_seed < 0 or shard < 0:
        raise ValueError(f"run_seed and shard must be non-negative, got {run_seed}, {shard}")
    return np.random.SeedSequence(entropy=int(run_seed), spawn_key=(target_key(target_id), int(shard)))


def shard_seed(run_seed: int, target_id: str, shard: int) -> int:
    """A 63-bit integer seed for one shard (fits int64 storage and ``torch.manual_seed``)."""
    state = shard_seed_sequence(run_seed, target_id, shard).generate_state(1, dtype=np.uint64)[0]
    return int(state) & ((1 << 63) - 1)
