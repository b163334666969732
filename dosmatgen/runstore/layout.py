"""The fixed geometry of a run store: shard size, atom capacity, top-K, DOS grid.

Everything here is decided when the store is created and never changes, so that writers can work
concurrently on pre-allocated arrays:

* a target with ``n`` candidates has ``num_shards = ceil(n / shard_size)`` shards and
  ``num_shards * shard_size`` candidate rows (the last shard is padded);
* shard ``i`` owns candidate rows ``[i*S, (i+1)*S)`` and atom rows ``[i*S*M, (i+1)*S*M)``
  with ``S = shard_size`` and ``M = max_atoms``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.errors import StoreError

_TARGET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class RunLayout:
    """Run-wide store geometry.

    * ``shard_size``: candidates per shard (the unit of work of every stage)
    * ``max_atoms``: atom capacity per candidate
    * ``top_k``: candidates per target sent to DFT
    * ``run_seed``: root of every per-shard seed
    * ``dos_grid``: energy grid (eV, relative to E_F) of the DFT site DOS written by the DFT stage
    * ``dos_channels``: channel names of that site DOS, e.g. ``("total",)`` or ``("s", "p", "d")``
    """

    shard_size: int
    max_atoms: int
    top_k: int
    run_seed: int
    dos_grid: EnergyGrid
    dos_channels: tuple[str, ...] = ("total",)

    def __post_init__(self) -> None:
        for name in ("shard_size", "max_atoms", "top_k"):
            if int(getattr(self, name)) < 1:
                raise StoreError(f"run layout: {name} must be >= 1, got {getattr(self, name)}")
        if int(self.run_seed) < 0:
            raise StoreError(f"run layout: run_seed must be >= 0, got {self.run_seed}")
        if not self.dos_channels:
            raise StoreError("run layout: dos_channels is empty")

    @property
    def inner_chunk(self) -> int:
        """Candidates per inner Zarr chunk (a divisor of shard_size, at most 64) for cheap partial reads."""
        return math.gcd(self.shard_size, 64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_size": int(self.shard_size),
            "max_atoms": int(self.max_atoms),
            "top_k": int(self.top_k),
            "run_seed": int(self.run_seed),
            "dos_grid": self.dos_grid.to_dict(),
            "dos_channels": list(self.dos_channels),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunLayout":
        try:
            return cls(
                int(d["shard_size"]),
                int(d["max_atoms"]),
                int(d["top_k"]),
                int(d["run_seed"]),
                EnergyGrid.from_dict(d["dos_grid"]),
                tuple(d["dos_channels"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"corrupt run layout {d!r}: {exc}") from exc


@dataclass(frozen=True, eq=False)
class TargetPlan:
    """One target of a run: its id, the requested atom count of each candidate, and JSON metadata.

    ``num_atoms`` has shape (n_candidates,), int; candidate row ``r`` is sampled with ``num_atoms[r]`` atoms.
    ``conditioning`` holds what the sampler needs to know about the target (e.g. the target site DOS,
    shape (n_E,) on ``SITE_GRID``), stored as an array in the target group.
    """

    id: str
    num_atoms: np.ndarray
    conditioning: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _TARGET_ID.match(self.id):
            raise StoreError(
                f"target id {self.id!r} must start with a letter or digit and use only letters, digits, '_', '.', '-' (max 64)"
            )
        n = np.asarray(self.num_atoms, dtype=np.int64).reshape(-1)
        if n.size == 0 or n.min() < 1:
            raise StoreError(f"target {self.id!r}: num_atoms must be a non-empty list of positive counts")
        object.__setattr__(self, "num_atoms", n)

    @property
    def n_candidates(self) -> int:
        return int(self.num_atoms.shape[0])


def num_shards(n_candidates: int, shard_size: int) -> int:
    return -(-int(n_candidates) // int(shard_size))
