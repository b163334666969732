"""Spectral audit of generated DOS (paper Appendix F, Table 8): plausibility, physical validity, diversity.

Distances between DOS rows (per-atom, states/eV/atom on TOTAL_GRID): cosine and Tanimoto similarity, the
1-Wasserstein distance W1 = dE * sum_i |F_x(i) - F_y(i)| of the unit-mass cumulative distributions, and the
bin-wise MSE. For each generated row the best match in the reference set under each metric is placed as a
percentile of the reference's leave-one-out (LOO) best-match distribution under that metric (oriented so that
a higher percentile means closer). A row is *plausible* when all four percentiles exceed 10; the *4-metric
agreement* is the fraction of rows whose four decile buckets span at most two adjacent buckets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.distance import cdist

from dosmatgen.dos.properties import TOTAL_DE, band_gap_soft

METRICS = ("cosine", "tanimoto", "w1", "mse")
#: True where larger is closer.
SIMILARITY = {"cosine": True, "tanimoto": True, "w1": False, "mse": False}
PLAUSIBLE_PERCENTILE = 10.0


def pairwise(metric: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) matrix of ``metric`` between rows of a and b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "cosine":
        return 1.0 - cdist(a, b, "cosine")
    if metric == "tanimoto":
        dot = a @ b.T
        na, nb = (a**2).sum(1)[:, None], (b**2).sum(1)[None]
        return dot / np.maximum(na + nb - dot, 1e-300)
    if metric == "w1":
        fa = np.cumsum(a, 1) / np.maximum(a.sum(1, keepdims=True), 1e-300)
        fb = np.cumsum(b, 1) / np.maximum(b.sum(1, keepdims=True), 1e-300)
        return cdist(fa, fb, "cityblock") * TOTAL_DE
    if metric == "mse":
        return cdist(a, b, "sqeuclidean") / a.shape[1]
    raise ValueError(f"unknown metric {metric!r}")


def _best(matrix: np.ndarray, metric: str) -> np.ndarray:
    return matrix.max(axis=1) if SIMILARITY[metric] else matrix.min(axis=1)


def loo_best(reference: np.ndarray, metric: str) -> np.ndarray:
    """Each reference row's best match among the other reference rows."""
    m = pairwise(metric, reference, reference)
    np.fill_diagonal(m, -np.inf if SIMILARITY[metric] else np.inf)
    return _best(m, metric)


def percentile_in(values: np.ndarray, distribution: np.ndarray, metric: str) -> np.ndarray:
    """Percentile (0..100, higher = closer) of each value within the reference LOO distribution."""
    dist = np.sort(distribution)
    if SIMILARITY[metric]:
        return 100.0 * np.searchsorted(dist, values, side="right") / dist.size
    return 100.0 * (dist.size - np.searchsorted(dist, values, side="left")) / dist.size


@dataclass(frozen=True)
class AuditResult:
    n_samples: int
    n_reference: int
    plausibility_rate: float
    four_metric_agreement: float
    reference_plausibility_rate: float
    nonnegative_bins: float
    edge_jump_median: float | None
    edge_jump_rows: int
    reference_edge_jump_median: float | None
    pairwise_cosine: float
    reference_pairwise_cosine: float
    unique_nearest: int
    reference_unique_nearest_mean: float
    reference_unique_nearest_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def _plausibility(percentiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    plausible = (percentiles > PLAUSIBLE_PERCENTILE).all(axis=1)
    buckets = np.clip(np.floor(percentiles / 10.0), 0, 9)
    agree = (buckets.max(axis=1) - buckets.min(axis=1)) <= 1
    return plausible, agree


def percentiles_against(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(n, 4) percentiles of the samples' best matches in ``reference`` under each metric."""
    cols = []
    for metric in METRICS:
        best = _best(pairwise(metric, samples, reference), metric)
        cols.append(percentile_in(best, loo_best(reference, metric), metric))
    return np.stack(cols, axis=1)


def reference_percentiles(reference: np.ndarray) -> np.ndarray:
    """(r, 4) LOO percentiles of the reference rows themselves (the self-consistency baseline)."""
    cols = []
    for metric in METRICS:
        loo = loo_best(reference, metric)
        cols.append(percentile_in(loo, loo, metric))
    return np.stack(cols, axis=1)


def edge_jumps(dos: np.ndarray, min_gap_ev: float = 0.1, frac: float = 0.01) -> np.ndarray:
    """Normalised edge jump DOS(e) / max(DOS) of rows with Algorithm-1 gap > ``min_gap_ev``; e is the first bin
    right of E_F exceeding ``frac`` of the row maximum."""
    d = np.asarray(dos, np.float64)
    rows = d[band_gap_soft(d) > min_gap_ev]
    out = []
    half = d.shape[1] // 2
    for row in rows:
        mx = row.max()
        above = np.flatnonzero(row[half:] > frac * mx)
        if above.size:
            out.append(row[half + above[0]] / mx)
    return np.asarray(out)


def mean_pairwise_cosine(dos: np.ndarray) -> float:
    c = pairwise("cosine", dos, dos)
    iu = np.triu_indices(c.shape[0], k=1)
    return float(c[iu].mean())


def unique_nearest(samples: np.ndarray, reference: np.ndarray) -> int:
    return int(np.unique(pairwise("cosine", samples, reference).argmax(axis=1)).size)


def self_unique_nearest(reference: np.ndarray, size: int, trials: int = 100, seed: int = 0) -> tuple[float, float]:
    """Unique cosine-nearest entries (self excluded) of random size-``size`` subsamples of the reference."""
    rng = np.random.default_rng(seed)
    c = pairwise("cosine", reference, reference)
    np.fill_diagonal(c, -np.inf)
    nearest = c.argmax(axis=1)
    counts = [np.unique(nearest[rng.choice(reference.shape[0], size, replace=False)]).size for _ in range(trials)]
    return float(np.mean(counts)), float(np.std(counts))


def audit(samples: np.ndarray, reference: np.ndarray, seed: int = 0) -> AuditResult:
    samples, reference = np.asarray(samples, np.float64), np.asarray(reference, np.float64)
    plausible, agree = _plausibility(percentiles_against(samples, reference))
    ref_plausible, _ = _plausibility(reference_percentiles(reference))
    jumps, ref_jumps = edge_jumps(samples), edge_jumps(reference)
    size = min(samples.shape[0], reference.shape[0] - 1)
    u_mean, u_std = self_unique_nearest(reference, size, seed=seed)
    return AuditResult(
        n_samples=int(samples.shape[0]),
        n_reference=int(reference.shape[0]),
        plausibility_rate=float(plausible.mean()),
        four_metric_agreement=float(agree.mean()),
        reference_plausibility_rate=float(ref_plausible.mean()),
        nonnegative_bins=float((samples >= 0).mean()),
        edge_jump_median=float(np.median(jumps)) if jumps.size else None,
        edge_jump_rows=int(jumps.size),
        reference_edge_jump_median=float(np.median(ref_jumps)) if ref_jumps.size else None,
        pairwise_cosine=mean_pairwise_cosine(samples),
        reference_pairwise_cosine=mean_pairwise_cosine(reference),
        unique_nearest=unique_nearest(samples[:size], reference),
        reference_unique_nearest_mean=u_mean,
        reference_unique_nearest_std=u_std,
    )
