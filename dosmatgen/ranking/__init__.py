"""Ranking relaxed candidates by how close the surrogate's DOS of their conditioned site(s) is to the target.

* :mod:`~dosmatgen.ranking.distance` — distances between a predicted site DOS and the target (MAE on scaled
  features, cosine, weighted energy window).
* :mod:`~dosmatgen.ranking.sites` — which sites of a candidate are "conditioned" (indices, an element, all).
* :mod:`~dosmatgen.ranking.candidates` — candidates from structure files, joined with a relaxation table.
* :mod:`~dosmatgen.ranking.predictors` — site-DOS predictors: the trained surrogate, a per-element mean baseline.
* :mod:`~dosmatgen.ranking.rank` — :func:`rank_candidates`: predict, score, sort, keep the top K.
* :mod:`~dosmatgen.ranking.table` — the ranked table as CSV and Markdown.
* :mod:`~dosmatgen.ranking.comparison` — target vs surrogate vs DFT at the conditioned site (paper Fig. 8).

A predictor is any callable ``predict_site_dos(crystals) -> list[(n_atoms, 400) array]`` returning unscaled site
DOS (states/eV) on :data:`~dosmatgen.dos.grid.SITE_GRID`, one array per crystal.
"""

from dosmatgen.ranking.candidates import Candidate, load_candidates, read_relaxation_table
from dosmatgen.ranking.distance import DistanceSpec, site_distances
from dosmatgen.ranking.rank import RankedCandidate, RankingResult, rank_candidates
from dosmatgen.ranking.sites import SiteSelection

__all__ = [
    "Candidate",
    "DistanceSpec",
    "RankedCandidate",
    "RankingResult",
    "SiteSelection",
    "load_candidates",
    "rank_candidates",
    "read_relaxation_table",
    "site_distances",
]
