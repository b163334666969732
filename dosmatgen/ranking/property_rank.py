"""Rank candidates by property targets on their predicted per-atom total DOS (the second paper's filters).

``predict_total(crystals) -> (n, 256)`` is the total DOS on TOTAL_GRID, states/eV/atom: a total-DOS surrogate, or
a site-DOS surrogate averaged over the atoms (:class:`dosmatgen.design.total_dos.SurrogateTotalDOS`). Each
candidate gets the derived properties of its predicted DOS, whether it meets every target
(:func:`~dosmatgen.dos.property_targets.meets_targets`, the rejection filter) and the ranking score
:func:`~dosmatgen.dos.property_targets.target_error` (lower is better). Candidates are sorted by (misses a target,
score, input order): every candidate that meets the targets comes before every one that misses them. Candidates
that cannot be scored (formation energy above the threshold, prediction failed) get score NaN and a flag, and
come last; ``only_meeting`` keeps the ones that miss a target out of the top K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos.property_targets import PropertyTargets, meets_targets, target_error, target_properties
from dosmatgen.errors import DosmatgenError
from dosmatgen.ranking.candidates import Candidate


@dataclass
class PropertyRankedCandidate:
    """One candidate: ``score`` (NaN when not scored), ``meets`` every target, ``properties`` of ``predicted``
    (band_gap, dos_ef, n_ef), ``predicted`` (256,) total DOS; ``rank`` 1-based among scored (0: not scored)."""

    candidate: Candidate
    score: float = math.nan
    meets: bool = False
    properties: dict[str, float] = field(default_factory=dict)
    predicted: np.ndarray | None = None
    flags: tuple[str, ...] = ()
    rank: int = 0

    @property
    def scored(self) -> bool:
        return math.isfinite(self.score)


@dataclass
class PropertyRankingResult:
    ranked: list[PropertyRankedCandidate]
    targets: PropertyTargets
    top_k: int
    only_meeting: bool = False
    predictor: str = ""
    te_reference: str | None = None

    @property
    def top(self) -> list[PropertyRankedCandidate]:
        return [r for r in self.ranked if r.scored and (r.meets or not self.only_meeting)][: self.top_k]

    @property
    def n_scored(self) -> int:
        return sum(r.scored for r in self.ranked)

    @property
    def n_meeting(self) -> int:
        return sum(r.scored and r.meets for r in self.ranked)


def rank_by_properties(
    candidates: Sequence[Candidate],
    predict_total: Callable[[Sequence[Crystal]], np.ndarray],
    targets: PropertyTargets,
    *,
    te_reference: np.ndarray | None = None,
    top_k: int = 10,
    max_formation_energy: float | None = None,
    only_meeting: bool = False,
    predictor_name: str = "",
    te_reference_name: str | None = None,
) -> PropertyRankingResult:
    """Score and sort ``candidates`` (module docstring)."""
    targets.require_any()
    if top_k < 1:
        raise DosmatgenError(f"top K must be at least 1, got {top_k}")
    results = [PropertyRankedCandidate(c, flags=tuple(c.flags)) for c in candidates]
    todo = []
    for i, r in enumerate(results):
        fe = r.candidate.formation_energy
        if max_formation_energy is not None and fe is not None and fe > max_formation_energy:
            r.flags += (f"formation energy {fe:.3f} > {max_formation_energy:g} eV/atom",)
        else:
            todo.append(i)
    if todo:
        dos = np.asarray(predict_total([results[i].candidate.crystal for i in todo]), dtype=np.float64)
        if dos.shape != (len(todo), TOTAL_GRID.n):
            raise DosmatgenError(f"the total-DOS predictor returned shape {dos.shape} for {len(todo)} crystals; "
                                 f"expected ({len(todo)}, {TOTAL_GRID.n})")  # fmt: skip
        ok = np.all(np.isfinite(dos), axis=1)
        for i in (todo[j] for j in np.flatnonzero(~ok)):
            results[i].flags += ("total-DOS prediction failed",)
        rows = [todo[j] for j in np.flatnonzero(ok)]
        if rows:
            d = dos[ok]
            props = target_properties(d)
            meets = meets_targets(d, targets, te_reference, properties=props)
            scores = target_error(d, targets, te_reference)
            for j, i in enumerate(rows):
                r = results[i]
                r.score, r.meets, r.predicted = float(scores[j]), bool(meets[j]), d[j].copy()
                r.properties = {k: float(v[j]) for k, v in props.items()}
                if not r.meets:
                    r.flags += ("misses a target",)
    order = sorted(range(len(results)),
                   key=lambda i: (not results[i].scored, not results[i].meets, results[i].score if results[i].scored else 0.0, i))  # fmt: skip
    ranked = [results[i] for i in order]
    for k, r in enumerate(x for x in ranked if x.scored):
        r.rank = k + 1
    return PropertyRankingResult(ranked, targets, int(top_k), bool(only_meeting), predictor_name, te_reference_name)
