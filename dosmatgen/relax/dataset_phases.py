"""Competing phases from a dataset: every dataset crystal whose elements lie inside a candidate's chemical system,
relaxed once by the SAME force field as the candidates and cached on disk.

This is the convex hull behind the stability part of S.U.N. (stable, unique, novel) in ``dosmatgen design``'s
evaluation. It differs from the papers' hull, which is built from DFT energies of Materials Project phases: here
every energy (candidates, dataset phases, elemental references) comes from one MLFF, and the phases are only the
crystals of the dataset (a few thousand), so a candidate can look stable because its true competitors are
missing. State this next to any number computed with it.

    phases = DatasetPhases(store_arrays, relaxer, cache_path="runs/eval/phases.json")
    phases.ensure([{8, 22}, {8, 22, 38}])          # relaxes the missing phases of these systems in one batch
    competing = phases.for_elements({8, 22, 38})   # [(crystal, total energy eV)]

The cache is keyed by the force field's ``cache_key``; a phase that fails to relax is recorded with its reason
and left out of every hull (never silently used with a bad energy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.atomic import atomic_write


class DatasetPhases:
    """Dataset crystals as competing phases (module docstring). ``arrays``: a :class:`DatasetArrays`;
    ``relaxer``: a :class:`~dosmatgen.relax.batched_fire.BatchedRelaxer`; ``indices``: which structures may serve
    (default all)."""

    def __init__(self, arrays, relaxer, cache_path: str | Path | None = None, indices: np.ndarray | None = None,
                 cache_key: str | None = None) -> None:
        self.arrays = arrays
        self.relaxer = relaxer
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache_key = cache_key or getattr(getattr(relaxer, "mlff", None), "cache_key", "unknown")
        idx = np.arange(arrays.num_structures) if indices is None else np.asarray(indices, dtype=np.int64)
        self._elements = {int(i): frozenset(int(z) for z in arrays.atomic_numbers[arrays.atom_slice(int(i))]) for i in idx}
        self.entries: dict[str, dict] = self._load()

    # ----------------------------------------------------------------- cache
    def _load(self) -> dict[str, dict]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        try:
            data = json.loads(self.cache_path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidRecordError(f"unreadable competing-phase cache ({exc})", file=str(self.cache_path)) from None
        if data.get("mlff") != self.cache_key:
            raise InvalidRecordError(f"competing-phase cache was computed with {data.get('mlff')!r}, not {self.cache_key!r}; "
                                     f"use another cache file", file=str(self.cache_path))
        return dict(data.get("entries", {}))

    def _save(self) -> None:
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.cache_path) as fh:
            fh.write(json.dumps({"mlff": self.cache_key, "entries": self.entries}, indent=0))

    # -------------------------------------------------------------- selection
    def indices_for(self, elements: Iterable[int]) -> list[int]:
        """Dataset structures whose elements are a subset of ``elements``."""
        system = frozenset(int(z) for z in elements)
        return [i for i, els in self._elements.items() if els <= system]

    def ensure(self, systems: Iterable[Iterable[int]]) -> int:
        """Relax (in one batched run) every phase of ``systems`` not in the cache; returns how many were relaxed."""
        wanted: set[int] = set()
        for system in systems:
            wanted.update(self.indices_for(system))
        missing = sorted(i for i in wanted if self.arrays.ids[i] not in self.entries)
        if not missing:
            return 0
        results = self.relaxer.run([self.arrays.crystal(i) for i in missing])
        for i, r in zip(missing, results):
            ok = bool(r.ok and math.isfinite(r.energy_relaxed))
            self.entries[self.arrays.ids[i]] = {
                "energy": float(r.energy_relaxed) if ok else None, "num_atoms": int(self.arrays.num_atoms[i]),
                "status": r.status, "reason": None if ok else str(r.reason or r.status),
            }
        self._save()
        return len(missing)

    def for_elements(self, elements: Iterable[int]) -> list[tuple[Crystal, float]]:
        """(dataset crystal, relaxed total energy eV) of every relaxed phase inside ``elements``.

        Raises InvalidRecordError when a phase of this system was never relaxed (call :meth:`ensure` first)."""
        out = []
        for i in self.indices_for(elements):
            entry = self.entries.get(self.arrays.ids[i])
            if entry is None:
                raise InvalidRecordError(f"competing phase {self.arrays.ids[i]} was not relaxed; call ensure() first")
            if entry["energy"] is not None:
                out.append((self.arrays.crystal(i), float(entry["energy"])))
        return out

    @property
    def failed(self) -> dict[str, str]:
        return {k: v["reason"] for k, v in self.entries.items() if v["energy"] is None}
