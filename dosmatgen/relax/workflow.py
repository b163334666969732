"""One workflow for relax -> formation energy -> energy above hull, shared by ``dosmatgen relax`` and the screen's
relax stage (:class:`dosmatgen.screen.library_stages.MLFFRelaxer`).

* relaxation: :class:`~dosmatgen.relax.batched_fire.BatchedRelaxer` on one MLFF;
* formation energies (eV/atom, unrelaxed and relaxed) against the SAME MLFF's elemental references, all missing
  references computed in one batched relaxation (:func:`~dosmatgen.relax.formation_energy.formation_energies`);
  NaN for a structure with an element that has no reference, with the reason in :attr:`RelaxedSet.reference_note`;
* energy above the hull of the competing phases (eV/atom), relaxed once by the same force field with their own
  relaxer (so the candidates' call counts and timings stay their own); NaN without competing phases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
from dosmatgen.relax.mlff import MLFF
from dosmatgen.relax.result import RelaxResult


@dataclass
class RelaxedSet:
    """The workflow's output, one entry per input structure (in input order)."""

    results: list[RelaxResult]
    #: (unrelaxed, relaxed) formation energy, eV/atom; NaN when unknown
    formation_energy: list[tuple[float, float]]
    #: eV/atom above the hull of the competing phases; NaN when unknown or without competing phases
    energy_above_hull: list[float]
    #: why some or all formation energies are NaN ("" when none is missing for a known reason)
    reference_note: str = ""
    #: how many competing phases were used and which were rejected ("" without competing phases)
    competing_note: str = ""


class StabilityWorkflow:
    """Relax, then formation energy and energy above hull. ``formation_energy=False`` skips the elemental
    references (and so the hull); ``competing_phases``: a CIF/extxyz file or a folder/zip of CIFs."""

    def __init__(self, mlff: MLFF, settings: RelaxSettings, *, formation_energy: bool = True,
                 references_cache: str | Path | None = None, competing_phases: str | Path | None = None) -> None:
        from dosmatgen.relax.references import ElementalReferences

        if competing_phases is not None and not formation_energy:
            raise InvalidRecordError("competing phases need the elemental references (formation_energy=True)")
        self.mlff = mlff
        self.settings = settings
        self.relaxer = BatchedRelaxer(mlff, settings)
        self.references = ElementalReferences(mlff, cache_path=references_cache) if formation_energy else None
        self.competing_path = competing_phases
        self._competing = None

    @property
    def competing(self):
        """The competing phases, relaxed on first use by their own relaxer (None without them)."""
        if self.competing_path is not None and self._competing is None:
            from dosmatgen.relax.competing_phases import CompetingPhases

            self._competing = CompetingPhases.load(self.competing_path, BatchedRelaxer(self.mlff, self.settings))
        return self._competing

    def run(self, crystals: Sequence[Crystal]) -> RelaxedSet:
        results = self.relaxer.run(crystals)
        nan2 = (math.nan, math.nan)
        e_form, note = [nan2] * len(results), ""
        if self.references is not None and any(r.ok for r in results):
            e_form, note = self._formation_energies(results)
        e_hull = [math.nan] * len(results)
        competing_note = ""
        if self.competing is not None:
            e_hull = [self.competing.energy_above_hull(r.relaxed, r.energy_relaxed, self.references) if r.ok else math.nan
                      for r in results]
            rejected = self.competing.rejected
            competing_note = (f"{len(self.competing.phases)} competing phases from {self.competing_path}"
                              + ("; not used: " + "; ".join(f"{i}: {why}" for i, why in rejected) if rejected else ""))
        return RelaxedSet(list(results), e_form, e_hull, note, competing_note)

    def _formation_energies(self, results: Sequence[RelaxResult]) -> tuple[list[tuple[float, float]], str]:
        from dosmatgen.elements import symbol
        from dosmatgen.relax.formation_energy import elements_without_reference, formation_energies

        usable = [r for r in results if r.ok]
        note = ""
        try:
            values = formation_energies(usable, self.references)
        except InvalidRecordError as exc:  # the reference set cannot be built at all
            note = str(exc)
            values = [(math.nan, math.nan)] * len(usable)
        else:  # after formation_energies: it finds the elements whose reference structures all fail to relax
            no_reference = elements_without_reference({int(z) for r in usable for z in r.initial.atomic_numbers}, self.references)
            if no_reference:
                failed = self.references.failed
                note = ("no formation energy for structures with " + ", ".join(symbol(z) for z in no_reference)
                        + " (no elemental reference" + "".join(f"; {symbol(z)}: {failed[z]}" for z in no_reference if z in failed) + ")")
        by_index = {r.index: v for r, v in zip(usable, values)}
        return [by_index.get(r.index, (math.nan, math.nan)) for r in results], note
