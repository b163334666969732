"""Rank candidates by the distance between the predicted DOS of their conditioned site(s) and the target.

For each candidate: the predictor gives the unscaled site DOS of every atom; the selected sites
(:class:`~dosmatgen.ranking.sites.SiteSelection`) are compared with the target (:mod:`~dosmatgen.ranking.distance`);
the per-site distances are reduced (min or mean) to the candidate's distance. Candidates are sorted by distance
(ties by input order); those that cannot be scored (no selected site, formation energy above the threshold,
prediction failed) get distance NaN, a flag, and come last; the top K are the first K scored candidates.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import DosmatgenError
from dosmatgen.ranking.candidates import Candidate
from dosmatgen.ranking.distance import DistanceSpec, check_site_dos, site_distances
from dosmatgen.ranking.sites import SiteSelection

log = logging.getLogger(__name__)

#: candidates given to the predictor per call
DEFAULT_BATCH_SIZE = 256


@dataclass
class RankedCandidate:
    """One candidate with its score. ``rank`` is 1-based among scored candidates (0 when not scored).

    ``sites`` the selected site indices; ``site_distances`` (len(sites),); ``best_site`` the selected site
    closest to the target (-1 when none); ``predicted`` (400,) the predicted DOS at ``best_site`` (states/eV),
    kept for plots.
    """

    candidate: Candidate
    distance: float = math.nan
    sites: list[int] = field(default_factory=list)
    site_distances: list[float] = field(default_factory=list)
    best_site: int = -1
    predicted: np.ndarray | None = None
    flags: tuple[str, ...] = ()
    rank: int = 0

    @property
    def scored(self) -> bool:
        return math.isfinite(self.distance)


@dataclass
class RankingResult:
    """All candidates, best first (unscored last), and the settings that produced the order."""

    ranked: list[RankedCandidate]
    top_k: int
    spec: DistanceSpec
    selection: SiteSelection
    scaled: bool
    target_name: str = ""
    predictor: str = ""

    @property
    def top(self) -> list[RankedCandidate]:
        return [r for r in self.ranked if r.scored][: self.top_k]

    @property
    def n_scored(self) -> int:
        return sum(r.scored for r in self.ranked)

    def metric_text(self) -> str:
        return self.spec.describe(self.scaled)


def _predict(predict_site_dos: Callable[[Sequence[Crystal]], Sequence[np.ndarray]], crystals: list[Crystal]) -> list[np.ndarray]:
    out = list(predict_site_dos(crystals))
    if len(out) != len(crystals):
        raise DosmatgenError(f"the site-DOS predictor returned {len(out)} arrays for {len(crystals)} crystals")
    checked = []
    for c, p in zip(crystals, out):
        a = check_site_dos(p, "predicted site DOS")
        if a.shape != (c.num_atoms, SITE_GRID.n):
            raise DosmatgenError(f"the site-DOS predictor returned shape {a.shape} for a crystal of {c.num_atoms} atoms; "
                                 f"expected ({c.num_atoms}, {SITE_GRID.n})")  # fmt: skip
        checked.append(a)
    return checked


def rank_candidates(
    candidates: Sequence[Candidate],
    target_features: np.ndarray,
    predict_site_dos: Callable[[Sequence[Crystal]], Sequence[np.ndarray]],
    *,
    spec: DistanceSpec = DistanceSpec(),
    selection: SiteSelection,
    top_k: int = 10,
    scaler: Any = None,
    max_formation_energy: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    target_name: str = "",
    predictor_name: str = "",
) -> RankingResult:
    """Score and sort ``candidates``; see the module docstring.

    ``target_features`` (400,) unscaled site DOS on SITE_GRID (e.g. ``resolve_target(spec).features``);
    ``predict_site_dos(crystals) -> [(n_atoms, 400)]`` unscaled; ``scaler`` the per-bin standardiser used by the
    ``mae`` metric (None: MAE in states/eV); ``max_formation_energy`` (eV/atom) excludes candidates above it
    (unknown formation energies are kept).
    """
    if top_k < 1:
        raise DosmatgenError(f"top K must be at least 1, got {top_k}")
    target = check_site_dos(target_features, "target DOS").reshape(-1)
    if target.shape != (SITE_GRID.n,):
        raise DosmatgenError(f"target DOS has {target.size} values; expected {SITE_GRID.n} on the model grid")
    results = [RankedCandidate(c, flags=tuple(c.flags)) for c in candidates]
    todo: list[int] = []
    for i, r in enumerate(results):
        c = r.candidate
        fe = c.formation_energy
        if max_formation_energy is not None and fe is not None and fe > max_formation_energy:
            r.flags += (f"formation energy {fe:.3f} > {max_formation_energy:g} eV/atom",)
            continue
        r.sites = selection.sites_of(c.crystal)
        if not r.sites:
            r.flags += (selection.missing_reason(c.crystal),)
            continue
        todo.append(i)

    for start in range(0, len(todo), max(1, int(batch_size))):
        chunk = todo[start : start + batch_size]
        preds = _predict(predict_site_dos, [results[i].candidate.crystal for i in chunk])
        for i, pred in zip(chunk, preds):
            r = results[i]
            d = site_distances(pred[r.sites], target, spec, scaler if spec.metric == "mae" else None)
            r.site_distances = [float(x) for x in d]
            j = int(np.argmin(d))
            r.best_site = r.sites[j]
            r.distance = float(d.min() if selection.reduce == "min" else d.mean())
            r.predicted = pred[r.best_site].copy()

    order = sorted(range(len(results)), key=lambda i: (not results[i].scored, results[i].distance if results[i].scored else 0.0, i))
    ranked = [results[i] for i in order]
    for k, r in enumerate(x for x in ranked if x.scored):
        r.rank = k + 1
    return RankingResult(ranked, int(top_k), spec, selection, scaled=scaler is not None and spec.metric == "mae",
                         target_name=target_name, predictor=predictor_name)  # fmt: skip
