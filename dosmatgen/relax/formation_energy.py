"""Formation energy per atom from MLFF energies, and the threshold filter of the screening stage.

``E_f = (E_total - sum_Z n_Z * mu_Z) / N`` in eV/atom, with ``mu_Z`` the elemental reference energies
from the SAME force field (:class:`~dosmatgen.relax.references.ElementalReferences`).

The default filter keeps ``E_f <= 0 eV/atom``. (The DOSMatGen paper's -1.5 eV/atom was specific to its
IrO2 case and Orb-v2 and would reject nearly every intermetallic, e.g. the Au3Ni demo.) A target's
config may set another threshold, or an energy-above-hull cut when competing phases are supplied
(:mod:`dosmatgen.relax.hull`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.references import ElementalReferences
from dosmatgen.relax.result import RelaxResult

#: Default threshold on the formation energy, eV/atom (keep E_f <= this).
DEFAULT_MAX_FORMATION_ENERGY = 0.0


def composition_counts(crystal: Crystal) -> dict[int, int]:
    z, n = np.unique(crystal.atomic_numbers, return_counts=True)
    return {int(a): int(b) for a, b in zip(z, n)}


def formation_energy_per_atom(crystal: Crystal, total_energy: float, references: ElementalReferences | Mapping[int, float]) -> float:
    """Formation energy in eV/atom of ``crystal`` with total energy ``total_energy`` (eV).

    ``references`` is an :class:`ElementalReferences` (computes missing elements) or a mapping Z -> eV/atom.
    """
    counts = composition_counts(crystal)
    if isinstance(references, ElementalReferences):
        references.ensure(counts)
        mu = references.known
    else:
        mu = {int(k): float(v) for k, v in references.items()}
    missing = [z for z in counts if z not in mu]
    if missing:
        raise KeyError(f"no reference energy for Z={missing}")
    e_ref = sum(n * mu[z] for z, n in counts.items())
    return float((total_energy - e_ref) / crystal.num_atoms)


def elements_without_reference(elements: Iterable[int], references: ElementalReferences) -> list[int]:
    """The atomic numbers among ``elements`` that get no elemental reference: outside the reference set (Z > 100),
    not supported by the references' MLFF, or already found to have no reference structure that relaxes
    (:attr:`ElementalReferences.failed`)."""
    from dosmatgen.relax.references import reference_candidates

    missing = []
    failed = references.failed
    for z in sorted({int(x) for x in elements}):
        if z in references.known:
            continue
        if z in failed:
            missing.append(z)
            continue
        try:
            reference_candidates(z)
        except InvalidRecordError:
            missing.append(z)
            continue
        if z not in references.mlff.supported_elements:
            missing.append(z)
    return missing


def formation_energies(results: Sequence[RelaxResult], references: ElementalReferences) -> list[tuple[float, float]]:
    """(unrelaxed, relaxed) formation energies in eV/atom for each result; NaN where the energy is unknown or a
    structure holds an element without an elemental reference (see :func:`elements_without_reference`) or its
    own formation energy cannot be computed.

    All needed elements are computed in one batched reference relaxation first.
    """
    wanted = {int(z) for r in results if r.ok or np.isfinite(r.energy_initial) for z in r.initial.atomic_numbers}
    unavailable = set(elements_without_reference(wanted, references))
    references.ensure(wanted - unavailable)
    unavailable |= set(references.failed)  # found by this ensure: every reference structure failed to relax
    mu = references.known
    out = []
    for r in results:
        if unavailable & {int(z) for z in r.initial.atomic_numbers}:
            out.append((float("nan"), float("nan")))
            continue
        try:
            e0 = formation_energy_per_atom(r.initial, r.energy_initial, mu) if np.isfinite(r.energy_initial) else float("nan")
            e1 = formation_energy_per_atom(r.relaxed, r.energy_relaxed, mu) if r.ok else float("nan")
        except (KeyError, ValueError, InvalidRecordError):  # this structure only; the others keep their values
            e0 = e1 = float("nan")
        out.append((e0, e1))
    return out


@dataclass(frozen=True)
class StabilityFilter:
    """Keep a candidate when ``E_f <= max_formation_energy`` (eV/atom) and, if set and known,
    ``E_above_hull <= max_energy_above_hull`` (eV/atom). NaN never passes."""

    max_formation_energy: float | None = DEFAULT_MAX_FORMATION_ENERGY
    max_energy_above_hull: float | None = None

    def passes(self, formation_energy: float, energy_above_hull: float | None = None) -> bool:
        if self.max_formation_energy is not None and not (formation_energy <= self.max_formation_energy):
            return False
        if self.max_energy_above_hull is not None and energy_above_hull is not None:
            if not (energy_above_hull <= self.max_energy_above_hull):
                return False
        return True
