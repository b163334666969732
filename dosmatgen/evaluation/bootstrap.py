"""95 % bootstrap intervals of the DOS-match MAE, resampling STRUCTURES (the sites of one structure are generated
together and are not independent).

For one setting: per-site MAE(ŷ_gen, y) on the scaled features (NaN where the generated structure could not be
evaluated) and, for the random-pair baseline, per-site MAE(ŷ_gen_i, y_p(i)) with the same seeded derangement ``p``
as :func:`dosmatgen.metrics.paired.paired_metric` uses. Each resample draws as many structures as there are, with
replacement, and takes the mean over all their finite sites; the interval is the percentile interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dosmatgen.metrics.derangement import random_derangement
from dosmatgen.metrics.dos_match import mae_rows

#: resamples per interval and the interval's level
N_RESAMPLES = 2000
LEVEL = 0.95


def cluster_bootstrap(values: np.ndarray, offsets: np.ndarray, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of the finite ``values`` (one per site) and its percentile interval, resampling the groups
    ``values[offsets[i]:offsets[i+1]]`` (structures) with replacement. NaN sites are left out."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    finite = np.isfinite(values)
    sums = np.add.reduceat(np.where(finite, values, 0.0), offsets[:-1]) if len(offsets) > 1 else np.zeros(0)
    counts = np.add.reduceat(finite.astype(np.float64), offsets[:-1]) if len(offsets) > 1 else np.zeros(0)
    empty = offsets[1:] == offsets[:-1]  # reduceat gives the next element for empty groups: zero them
    sums[empty], counts[empty] = 0.0, 0.0
    n_groups = len(sums)
    if n_groups == 0 or counts.sum() == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "level": level, "n_resamples": 0,
                "n_groups": int(n_groups), "n_sites": 0}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_groups, size=(n_resamples, n_groups))
    num, den = sums[picks].sum(axis=1), counts[picks].sum(axis=1)
    stats = num[den > 0] / den[den > 0]
    alpha = (1.0 - level) / 2.0
    return {"mean": float(sums.sum() / counts.sum()), "lo": float(np.quantile(stats, alpha)),
            "hi": float(np.quantile(stats, 1.0 - alpha)), "level": level, "n_resamples": int(stats.size),
            "n_groups": int(n_groups), "n_sites": int(counts.sum())}


def dos_match_intervals(pred_scaled: np.ndarray, target_scaled: np.ndarray, offsets: np.ndarray, *, seed: int = 0,
                        n_resamples: int = N_RESAMPLES) -> dict[str, dict[str, Any]]:
    """``{"mae_gen_vs_target": …, "random_pair": …}``: bootstrap means and intervals of the per-site MAE of the
    generated structures against their own condition and against a deranged condition."""
    pred = np.asarray(pred_scaled, dtype=np.float64)
    target = np.asarray(target_scaled, dtype=np.float64)
    matched = np.full(pred.shape[0], np.nan)
    deranged = np.full(pred.shape[0], np.nan)
    usable = np.isfinite(pred).all(axis=1) & np.isfinite(target).all(axis=1)
    idx = np.flatnonzero(usable)
    if idx.size:
        matched[idx] = mae_rows(pred[idx], target[idx])
    if idx.size >= 2:
        perm = random_derangement(idx.size, seed)
        deranged[idx] = mae_rows(pred[idx], target[idx][perm])
    return {
        "mae_gen_vs_target": cluster_bootstrap(matched, offsets, n_resamples=n_resamples, seed=seed),
        "random_pair": cluster_bootstrap(deranged, offsets, n_resamples=n_resamples, seed=seed + 1),
    }


def paired_difference(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None, *, n_resamples: int = N_RESAMPLES,
                      level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Weighted mean of ``a − b`` over paired units (structures) and its percentile interval, resampling the units
    with replacement: ``Σ w (a − b) / Σ w`` per resample. ``a`` and ``b`` are one value per unit in two settings run
    on the same units; ``weights`` (default 1) e.g. the site counts, so that a per-structure mean MAE pools like the
    site-level MAE. Identical ``a`` and ``b`` give the interval [0, 0]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    if a.shape != b.shape or a.shape != w.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {a.shape}, {b.shape}, {w.shape}")
    if a.size == 0 or not np.all(np.isfinite(a)) or not np.all(np.isfinite(b)) or np.any(w <= 0):
        raise ValueError("paired values must be finite and non-empty, with positive weights")
    d = a - b
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, a.size, size=(n_resamples, a.size))
    stats = (d[picks] * w[picks]).sum(axis=1) / w[picks].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    return {"mean": float(np.sum(d * w) / np.sum(w)), "lo": float(np.quantile(stats, alpha)),
            "hi": float(np.quantile(stats, 1.0 - alpha)), "level": level, "n_resamples": int(n_resamples), "n": int(a.size)}
