"""A whole dataset as numpy arrays in memory: what a store holds, and what ``DatasetStore.to_memory()`` returns.

Shapes (N structures, M atoms in total, see :mod:`dosmatgen.data.schema`):

* ``offsets`` (N+1,) int64; structure ``i`` owns atoms ``offsets[i]:offsets[i+1]``
* ``atomic_numbers`` (M,) int16; ``frac_coords`` (M, 3) float64; ``lattice`` (N, 3, 3) float64, Å
* ``site_dos`` (M, 400) and ``total_dos`` (N, 256): raw features (states/eV per site, states/eV/atom), or None
  for structure-only data
* ``energy``, ``efermi`` (N,) float64 eV (NaN where unknown); ``split`` (N,) int8
* ``properties`` name -> (N,) float32
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.schema import SPLIT_CODES


@dataclass
class DatasetArrays:
    ids: list[str]
    sources: list[str]
    offsets: np.ndarray
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    lattice: np.ndarray
    energy: np.ndarray
    efermi: np.ndarray
    split: np.ndarray
    metadata: list[str] = field(default_factory=list)
    site_dos: np.ndarray | None = None
    total_dos: np.ndarray | None = None
    properties: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not self.metadata:
            self.metadata = ["{}"] * n
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        m = int(self.offsets[-1]) if self.offsets.size else 0
        checks = {
            "sources": len(self.sources) == n,
            "metadata": len(self.metadata) == n,
            "offsets": self.offsets.shape == (n + 1,) and self.offsets[0] == 0 and bool(np.all(np.diff(self.offsets) >= 0)),
            "atomic_numbers": np.shape(self.atomic_numbers) == (m,),
            "frac_coords": np.shape(self.frac_coords) == (m, 3),
            "lattice": np.shape(self.lattice) == (n, 3, 3),
            "energy": np.shape(self.energy) == (n,),
            "efermi": np.shape(self.efermi) == (n,),
            "split": np.shape(self.split) == (n,),
            "site_dos": self.site_dos is None or np.shape(self.site_dos)[0] == m,
            "total_dos": self.total_dos is None or np.shape(self.total_dos)[0] == n,
        }
        checks.update({f"properties/{k}": np.shape(v) == (n,) for k, v in self.properties.items()})
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"inconsistent dataset arrays for {n} structures / {m} atoms: {', '.join(bad)}")

    # ------------------------------------------------------------------ sizes
    @property
    def num_structures(self) -> int:
        return len(self.ids)

    @property
    def num_sites(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_atoms(self) -> np.ndarray:
        return np.diff(self.offsets).astype(np.int32)

    @property
    def has_dos(self) -> bool:
        return self.site_dos is not None

    # --------------------------------------------------------------- access
    def atom_slice(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def crystal(self, i: int) -> Crystal:
        s = self.atom_slice(i)
        return Crystal(self.atomic_numbers[s].astype(np.int64), self.frac_coords[s], self.lattice[i],
                       {"id": self.ids[i], "source": self.sources[i]})

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the structures in ``split`` ("train", "val", "test" or "all")."""
        if split == "all":
            return np.arange(self.num_structures)
        if split not in SPLIT_CODES:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_CODES)} or 'all'")
        return np.flatnonzero(self.split == SPLIT_CODES[split])

    def atom_indices(self, structure_indices: np.ndarray) -> np.ndarray:
        """Indices of the atoms of the given structures, in order."""
        parts = [np.arange(self.offsets[i], self.offsets[i + 1]) for i in structure_indices]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
