"""Structure and composition match rates of generated structures against their conditioning structures.

Pair i is (generated[i], reference[i]), where reference[i] is the test structure whose DOS conditioned the
generation. Following DOSMatGen/DiffCSP, the structure match uses pymatgen's ``StructureMatcher`` with
``stol=0.5, angle_tol=10, ltol=0.3`` (defaults otherwise: primitive cells compared, volumes scaled), so a
structure and its supercell match. The composition match compares *reduced* compositions exactly.

Both rates divide by the number of pairs handed in: an invalid (None/empty/NaN) generated structure counts as a
non-match, and so does a comparison that timed out or raised. Their counts are reported separately, together
with the rate over the comparisons that finished (``rate_completed``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.inputs import check_same_length, to_crystal_or_none
from dosmatgen.metrics.timed_matcher import DEFAULT_TIMEOUT_S, MatchOutcome, TimedStructureMatcher


@dataclass(frozen=True)
class StructureMatchResult:
    """Structure match rate over ``n`` pairs, with every non-match accounted for.

    ``n = n_matched + n_no_match + n_invalid + n_timeout + n_error``. ``rate = n_matched / n``;
    ``rate_completed`` = matched / (matched + no_match) excludes time-outs, errors and invalid inputs.
    ``mean_rms`` is the mean normalised RMS displacement over matched pairs. ``outcomes`` lists each pair's outcome.
    """

    n: int
    n_matched: int
    n_no_match: int
    n_invalid: int
    n_timeout: int
    n_error: int
    rate: float
    rate_completed: float
    mean_rms: float
    timeout_s: float | None
    matcher_kwargs: dict[str, Any]
    outcomes: list[str] = field(repr=False)

    def to_dict(self, with_outcomes: bool = False) -> dict:
        d = asdict(self)
        if not with_outcomes:
            d.pop("outcomes")
        return d


def _rate(k: int, n: int) -> float:
    return float(k / n) if n else float("nan")


def structure_match_rate(
    generated: Sequence[Any],
    references: Sequence[Any],
    *,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    matcher: TimedStructureMatcher | None = None,
    **matcher_kwargs: Any,
) -> StructureMatchResult:
    """Fraction of pairs (generated[i], references[i]) that StructureMatcher says are the same structure.

    Inputs may be Crystals, pymatgen Structures, ASE Atoms, raw-array tuples/dicts or None (see
    :func:`~dosmatgen.metrics.inputs.to_crystal_or_none`). Pass an open ``matcher`` to reuse its worker.
    """
    check_same_length(generated, references, ("generated structures", "reference structures"))
    own = matcher is None
    m = matcher or TimedStructureMatcher(timeout_s=timeout_s, **matcher_kwargs)
    outcomes: list[str] = []
    rms: list[float] = []
    try:
        for g, r in zip(generated, references):
            res = m.compare(to_crystal_or_none(g), to_crystal_or_none(r))
            outcomes.append(res.outcome.value)
            if res.matched and res.rms is not None:
                rms.append(res.rms)
    finally:
        if own:
            m.close()
    counts = {o.value: outcomes.count(o.value) for o in MatchOutcome}
    n = len(outcomes)
    done = counts["match"] + counts["no_match"]
    return StructureMatchResult(
        n=n,
        n_matched=counts["match"],
        n_no_match=counts["no_match"],
        n_invalid=counts["invalid"],
        n_timeout=counts["timeout"],
        n_error=counts["error"],
        rate=_rate(counts["match"], n),
        rate_completed=_rate(counts["match"], done),
        mean_rms=float(np.mean(rms)) if rms else float("nan"),
        timeout_s=m.timeout_s,
        matcher_kwargs=dict(m.matcher_kwargs),
        outcomes=outcomes,
    )


@dataclass(frozen=True)
class CompositionMatchResult:
    """Fraction of pairs with the same reduced composition; invalid generated structures count as non-matches."""

    n: int
    n_matched: int
    n_invalid: int
    rate: float

    def to_dict(self) -> dict:
        return asdict(self)


def reduced_composition_key(crystal: Crystal) -> tuple[tuple[int, int], ...]:
    """Hashable reduced composition: sorted (Z, count / gcd of counts) pairs."""
    z, counts = np.unique(crystal.atomic_numbers, return_counts=True)
    g = int(np.gcd.reduce(counts))
    return tuple((int(a), int(c // g)) for a, c in zip(z, counts))


def composition_match_rate(generated: Sequence[Any], references: Sequence[Any]) -> CompositionMatchResult:
    """Fraction of pairs whose reduced compositions are equal (e.g. Na2Cl2 matches NaCl)."""
    check_same_length(generated, references, ("generated structures", "reference structures"))
    n_matched = n_invalid = 0
    for g, r in zip(generated, references):
        cg, cr = to_crystal_or_none(g), to_crystal_or_none(r)
        if cg is None or cr is None:
            n_invalid += 1
            continue
        n_matched += reduced_composition_key(cg) == reduced_composition_key(cr)
    n = len(generated)
    return CompositionMatchResult(n=n, n_matched=int(n_matched), n_invalid=n_invalid, rate=_rate(n_matched, n))
