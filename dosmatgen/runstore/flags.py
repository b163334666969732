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


_REASONS = {
    Flag.SAMPLE_INVALID: "invalid sample",
    Flag.RELAX_FAILED: "relaxation failed",
    Flag.NOT_CONVERGED: "relaxation not converged",
    Flag.NONFINITE_ENERGY: "non-finite energy",
    Flag.OVERLAPPING_ATOMS: "overlapping atoms",
    Flag.FORMATION_ENERGY_TOO_HIGH: "formation energy too high",
    Flag.BAD_VOLUME: "volume per atom out of range",
}


def describe_flags(flags: int) -> list[str]:
    """The reasons encoded in ``flags`` (empty list for a candidate that passed)."""
    f = Flag(int(flags))
    return [text for bit, text in _REASONS.items() if bit & f]
