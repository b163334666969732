"""Uniqueness within a batch of generated crystals and novelty against a training set.

Both use :class:`~dosmatgen.metrics.timed_matcher.TimedStructureMatcher` (paper tolerances by default) and only
compare structures with the same reduced composition (StructureMatcher never matches different ones).

* **Uniqueness** = number of distinct structures among the *valid* generated ones / number of valid ones.
  Structures are visited in order; each is compared with the first member of every distinct group of its
  composition, so the result does not depend on transitive-closure quirks. A comparison that times out or raises
  counts as "different" (it can only raise uniqueness) and is counted in ``n_timeout`` / ``n_error``.
* **Novelty** = fraction of the *valid* generated structures that match no training structure. Time-outs count as
  "novel" and are counted (they can only raise novelty).

``validity`` may be given (e.g. ``ValiditySummary.valid``); otherwise every structure that can be turned into a
Crystal counts as valid. Missing/empty/NaN structures are never valid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.inputs import MetricInputError, to_crystal_or_none
from dosmatgen.metrics.structure_match import reduced_composition_key
from dosmatgen.metrics.timed_matcher import DEFAULT_TIMEOUT_S, MatchOutcome, TimedStructureMatcher


@dataclass(frozen=True)
class UniquenessResult:
    n: int
    n_valid: int
    n_unique: int
    rate: float
    n_timeout: int
    n_error: int
    group_of: list[int] = field(repr=False)  # index of the first structure of each one's group (-1 if not valid)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("group_of")
        return d


@dataclass(frozen=True)
class NoveltyResult:
    n: int
    n_valid: int
    n_novel: int
    rate: float
    n_timeout: int
    n_error: int
    n_reference: int
    novel: list[bool] = field(repr=False)  # per generated structure (False if not valid)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("novel")
        return d


def _valid_crystals(structures: Sequence[Any], validity: Sequence[bool] | None) -> list[Crystal | None]:
    if validity is not None and len(validity) != len(structures):
        raise MetricInputError(f"{len(validity)} validity flags for {len(structures)} structures")
    out = []
    for i, s in enumerate(structures):
        c = to_crystal_or_none(s)
        out.append(c if c is not None and (validity is None or validity[i]) else None)
    return out


def uniqueness(
    structures: Sequence[Any],
    *,
    validity: Sequence[bool] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    matcher: TimedStructureMatcher | None = None,
    **matcher_kwargs: Any,
) -> UniquenessResult:
    """Fraction of distinct structures among the valid ones (1.0 = all different)."""
    crystals = _valid_crystals(structures, validity)
    own = matcher is None
    m = matcher or TimedStructureMatcher(timeout_s=timeout_s, **matcher_kwargs)
    groups: dict[tuple, list[int]] = defaultdict(list)  # composition -> representatives (indices)
    group_of = [-1] * len(crystals)
    n_timeout = n_error = 0
    try:
        for i, c in enumerate(crystals):
            if c is None:
                continue
            key = reduced_composition_key(c)
            for rep in groups[key]:
                res = m.compare(c, crystals[rep])
                n_timeout += res.outcome is MatchOutcome.TIMEOUT
                n_error += res.outcome is MatchOutcome.ERROR
                if res.matched:
                    group_of[i] = rep
                    break
            else:
                groups[key].append(i)
                group_of[i] = i
    finally:
        if own:
            m.close()
    n_valid = sum(c is not None for c in crystals)
    n_unique = sum(len(v) for v in groups.values())
    return UniquenessResult(
        n=len(crystals),
        n_valid=n_valid,
        n_unique=n_unique,
        rate=float(n_unique / n_valid) if n_valid else float("nan"),
        n_timeout=n_timeout,
        n_error=n_error,
        group_of=group_of,
    )


def novelty(
    structures: Sequence[Any],
    reference: Sequence[Any],
    *,
    validity: Sequence[bool] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    matcher: TimedStructureMatcher | None = None,
    **matcher_kwargs: Any,
) -> NoveltyResult:
    """Fraction of valid generated structures that match none of ``reference`` (the training set)."""
    crystals = _valid_crystals(structures, validity)
    by_comp: dict[tuple, list[Crystal]] = defaultdict(list)
    n_ref = 0
    for r in reference:
        c = to_crystal_or_none(r)
        if c is not None:
            by_comp[reduced_composition_key(c)].append(c)
            n_ref += 1
    own = matcher is None
    m = matcher or TimedStructureMatcher(timeout_s=timeout_s, **matcher_kwargs)
    novel = [False] * len(crystals)
    n_timeout = n_error = 0
    try:
        for i, c in enumerate(crystals):
            if c is None:
                continue
            found = False
            for ref in by_comp.get(reduced_composition_key(c), []):
                res = m.compare(c, ref)
                n_timeout += res.outcome is MatchOutcome.TIMEOUT
                n_error += res.outcome is MatchOutcome.ERROR
                if res.matched:
                    found = True
                    break
            novel[i] = not found
    finally:
        if own:
            m.close()
    n_valid = sum(c is not None for c in crystals)
    n_novel = sum(novel)
    return NoveltyResult(
        n=len(crystals),
        n_valid=n_valid,
        n_novel=n_novel,
        rate=float(n_novel / n_valid) if n_valid else float("nan"),
        n_timeout=n_timeout,
        n_error=n_error,
        n_reference=n_ref,
        novel=novel,
    )
