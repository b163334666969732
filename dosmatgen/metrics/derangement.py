"""Seeded derangements (permutations without fixed points) and the random-pair baseline they define.

The random-pair baseline of a paired metric ``m(pred[i], target[i])`` is ``m(pred[i], target[p[i]])`` with ``p`` a
derangement: every prediction is compared with the target of a *different* sample, as in Table 3 of the
DOS-intermediated inverse-design paper. A metric that is no better than its random-pair baseline carries no
information about the conditioning.
"""

from __future__ import annotations

import numpy as np


def random_derangement(n: int, seed: int | np.random.Generator | None = 0, max_tries: int = 10_000) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` with ``p[i] != i`` for all i (rejection sampling).

    ``n`` must be >= 2 (no derangement of 0 or 1 element exists; n = 0 returns an empty array). The acceptance
    probability is about 1/e, so the expected number of draws is about 2.7.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        raise ValueError("a derangement of one element does not exist (the random-pair baseline needs >= 2 samples)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    idx = np.arange(n)
    for _ in range(max_tries):
        p = rng.permutation(n)
        if not np.any(p == idx):
            return p.astype(np.int64)
    raise RuntimeError(f"no derangement of {n} elements found in {max_tries} draws")  # pragma: no cover


def is_derangement(p: np.ndarray) -> bool:
    """True when ``p`` is a permutation of ``range(len(p))`` without fixed points."""
    p = np.asarray(p)
    n = p.shape[0]
    return bool(np.array_equal(np.sort(p), np.arange(n)) and not np.any(p == np.arange(n)))
