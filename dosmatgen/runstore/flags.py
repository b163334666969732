"""Why a candidate was filtered out: a bit mask stored per candidate (``flags`` array, uint32).

A candidate with ``flags == 0`` passed every filter. The human-readable reasons come from
:func:`describe_flags`.
"""

from __future__ import annotations

import enum


class Flag(enum.IntFlag):
    NONE = 0
    #: the sampler produced no usable structure (e.g. more atoms than the run's max_atoms)
    SAMPLE_INVALID = 1
    #: the relaxer raised for this structure
    RELAX_FAILED = 2
    #: the relaxation hit its step limit before reaching fmax
    NOT_CONVERGED = 4
    #: NaN or infinite energy
    NONFINITE_ENERGY = 8
    #: two atoms closer than the filter's minimum distance after relaxation
    OVERLAPPING_ATOMS = 16
    #: formation energy above the filter's threshold (eV/atom)
    FORMATION_ENERGY_TOO_HIGH = 32
    #: cell volume per atom outside the filter's bounds after relaxation
    BAD_VOLUME = 64
    # why RELAX_FAILED (set together with it; runs written before these bits existed carry RELAX_FAILED alone)
    #: rejected before the MLFF: elements it does not support
    UNSUPPORTED_ELEMENTS = 128
    #: rejected before the MLFF: no atoms, non-positive or absurd cell volume
    BAD_INPUT_CELL = 256
    #: rejected before the MLFF: atoms closer than the relaxer's minimum distance
    OVERLAPPING_INPUT = 512
    #: the MLFF could not evaluate the structure (it raised, or e.g. an isolated atom)
    MLFF_ERROR = 1024
    #: during relaxation: the cell exploded or collapsed
    CELL_EXPLODED = 2048
    #: during relaxation: atoms collapsed onto each other, or the geometry became invalid
    ATOMS_COLLAPSED = 4096
    #: relaxed, but no formation energy: an element without an elemental reference (one the MLFF does not support)
    NO_FORMATION_ENERGY = 8192
    #: energy above the hull of the user's competing phases over the filter's threshold, or unknown (eV/atom)
    ABOVE_HULL = 16384


#: RelaxResult.failure kinds (dosmatgen.relax.result.FAILURE_KINDS) -> the bits set with RELAX_FAILED
FAILURE_FLAGS = {
    "empty": Flag.BAD_INPUT_CELL,
    "unsupported_elements": Flag.UNSUPPORTED_ELEMENTS,
    "bad_cell": Flag.BAD_INPUT_CELL,
    "overlapping_atoms": Flag.OVERLAPPING_INPUT,
    "mlff_error": Flag.MLFF_ERROR,
    "nonfinite": Flag.NONFINITE_ENERGY,
    "geometry_invalid": Flag.ATOMS_COLLAPSED,
    "cell_exploded": Flag.CELL_EXPLODED,
    "atoms_collapsed": Flag.ATOMS_COLLAPSED,
}


_REASONS = {
    Flag.SAMPLE_INVALID: "invalid sample",
    Flag.RELAX_FAILED: "relaxation failed",
    Flag.NOT_CONVERGED: "relaxation not converged",
    Flag.NONFINITE_ENERGY: "non-finite energy",
    Flag.OVERLAPPING_ATOMS: "overlapping atoms",
    Flag.FORMATION_ENERGY_TOO_HIGH: "formation energy too high",
    Flag.BAD_VOLUME: "volume per atom out of range",
    Flag.UNSUPPORTED_ELEMENTS: "relaxation failed: elements not supported by the MLFF",
    Flag.BAD_INPUT_CELL: "relaxation failed: empty structure or absurd cell before relaxation",
    Flag.OVERLAPPING_INPUT: "relaxation failed: overlapping atoms before relaxation",
    Flag.MLFF_ERROR: "relaxation failed: the MLFF could not evaluate it",
    Flag.CELL_EXPLODED: "relaxation failed: cell exploded or collapsed",
    Flag.ATOMS_COLLAPSED: "relaxation failed: atoms collapsed",
    Flag.NO_FORMATION_ENERGY: "no formation energy (element without a reference)",
    Flag.ABOVE_HULL: "energy above hull too high (or unknown)",
}


def failure_flags(failure: str | None) -> Flag:
    """RELAX_FAILED plus the bit that says why (``failure`` is a RelaxResult.failure kind; None or an unknown
    kind gives RELAX_FAILED alone)."""
    return Flag.RELAX_FAILED | FAILURE_FLAGS.get(failure or "", Flag.NONE)


def describe_flags(flags: int) -> list[str]:
    """The reasons encoded in ``flags`` (empty list for a candidate that passed)."""
    f = Flag(int(flags))
    return [text for bit, text in _REASONS.items() if bit & f]
