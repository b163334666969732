"""Checks made BEFORE a structure reaches the force field; a failed check rejects it with a reason."""

from __future__ import annotations

from dataclasses import dataclass

from dosmatgen.crystal import Crystal
from dosmatgen.elements import symbol


@dataclass(frozen=True)
class PrefilterSettings:
    """Thresholds of :func:`rejection_reason`.

    min_distance: Å, closest allowed pair (periodic images included).
    min_volume_per_atom / max_volume_per_atom: Å^3 per atom; outside this range a cell is degenerate or
    absurd (typical solids: 5-70 Å^3/atom). ``None`` disables the upper bound (molecules in a box).
    """

    min_distance: float = 0.5
    min_volume_per_atom: float = 1.0
    max_volume_per_atom: float | None = 500.0


def rejection(crystal: Crystal, supported_elements: frozenset[int] | set[int], settings: PrefilterSettings = PrefilterSettings()) -> tuple[str, str] | None:
    """``(kind, reason)`` when ``crystal`` must not be relaxed, or None when it may. ``kind`` is a key of
    :data:`dosmatgen.relax.result.FAILURE_KINDS`, ``reason`` the message with the numbers.

    Checks, in order: no atoms; elements the MLFF does not support; cell volume per atom outside the
    allowed range (also catches a zero or non-finite volume); two atoms closer than ``min_distance``.
    """
    n = crystal.num_atoms
    if n == 0:
        return "empty", "empty structure (no atoms)"
    missing = sorted({int(z) for z in crystal.atomic_numbers.tolist()} - set(supported_elements))
    if missing:
        return "unsupported_elements", "elements not supported by the MLFF: " + ", ".join(symbol(z) for z in missing)
    volume = crystal.volume
    per_atom = volume / n
    if not per_atom >= settings.min_volume_per_atom:
        return "bad_cell", (f"cell volume {volume:.4g} A^3 ({per_atom:.3g} A^3/atom) is non-positive or below "
                            f"{settings.min_volume_per_atom} A^3/atom")
    if settings.max_volume_per_atom is not None and per_atom > settings.max_volume_per_atom:
        return "bad_cell", f"cell volume {volume:.4g} A^3 ({per_atom:.3g} A^3/atom) is absurd (above {settings.max_volume_per_atom} A^3/atom)"
    dmin = crystal.min_interatomic_distance()
    if dmin < settings.min_distance:
        return "overlapping_atoms", f"overlapping atoms: closest pair {dmin:.3f} A < {settings.min_distance} A"
    return None


def rejection_reason(crystal: Crystal, supported_elements: frozenset[int] | set[int], settings: PrefilterSettings = PrefilterSettings()) -> str | None:
    """Why ``crystal`` must not be relaxed (the message of :func:`rejection`), or None when it may."""
    found = rejection(crystal, supported_elements, settings)
    return None if found is None else found[1]
