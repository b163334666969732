"""Competing phases for the energy above the hull: the user's known structures, relaxed once by the same force
field as the candidates, so that every energy on the phase diagram comes from one model.

``CompetingPhases.load(path, relaxer)`` reads a CIF file, a folder or zip of CIFs, or an extxyz file, relaxes the
structures with the given :class:`~dosmatgen.relax.BatchedRelaxer` and keeps those that relax (a structure that
fails is reported, not silently dropped: :attr:`rejected`). :meth:`energy_above_hull` then gives eV/atom above
the hull of those phases plus the force field's elemental references (:mod:`dosmatgen.relax.hull`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.hull import energy_above_hull
from dosmatgen.relax.references import ElementalReferences


@dataclass
class CompetingPhases:
    """Relaxed competing phases: ``phases`` = [(id, relaxed crystal, total energy in eV)]."""

    source: str
    phases: list[tuple[str, Crystal, float]]
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (id, why)

    @classmethod
    def load(cls, path: str | Path, relaxer) -> "CompetingPhases":
        """Read and relax the structures of ``path`` with ``relaxer`` (a BatchedRelaxer).

        Raises InvalidRecordError naming the file when it holds no readable structure or none relaxes.
        """
        from dosmatgen.io.structure_files import iter_structures

        path = Path(path)
        if not path.exists():
            raise InvalidRecordError("competing phases: no such file or folder", file=str(path))
        ids, crystals, rejected = [], [], []
        for rid, item in iter_structures(path):
            if isinstance(item, InvalidRecordError):
                rejected.append((str(item.record or rid), item.problem))
                continue
            ids.append(str(rid))
            crystals.append(item)
        if not crystals:
            raise InvalidRecordError("competing phases: no readable structure", file=str(path))
        phases = []
        for rid, result in zip(ids, relaxer.run(crystals)):
            if result.ok and math.isfinite(result.energy_relaxed):
                phases.append((rid, result.relaxed, float(result.energy_relaxed)))
            else:
                rejected.append((rid, f"did not relax: {result.status}: {result.reason}"))
        if not phases:
            raise InvalidRecordError(f"competing phases: none of {len(crystals)} structures relaxed ({rejected[0][1]})",
                                     file=str(path))
        return cls(str(path), phases, rejected)

    def energy_above_hull(self, crystal: Crystal, total_energy: float, references: ElementalReferences) -> float:
        """eV/atom above the hull (0 on it); NaN when an element has no reference in this force field."""
        if not math.isfinite(total_energy):
            return float("nan")
        elements = {int(z) for z in crystal.atomic_numbers}
        relevant = [(c, e) for _, c, e in self.phases if {int(z) for z in c.atomic_numbers} <= elements]
        try:
            return energy_above_hull(crystal, total_energy, relevant, references)
        except (KeyError, ValueError, InvalidRecordError):
            return float("nan")
