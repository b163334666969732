"""A paired per-sample metric together with its random-pair (derangement) baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from dosmatgen.metrics.derangement import random_derangement

#: A per-row metric: (M, K) predictions and (M, K) targets -> (M,) values (NaN where undefined).
RowMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairedMetric:
    """Mean of a per-sample metric over matched pairs and over random (deranged) pairs.

    * ``value``: mean over the ``n - n_undefined`` matched pairs where the metric is defined.
    * ``baseline``: the same metric with prediction i compared to target ``p[i]``, ``p`` a seeded derangement
      (NaN when fewer than 2 samples are usable).
    * ``n``: number of pairs handed in; ``n_undefined``: matched pairs left out (non-finite input or the metric
      undefined, e.g. a DOS with zero area for JS divergence).
    * ``features``: what the metric was computed on (e.g. "scaled 400-bin site DOS").
    """

    name: str
    value: float
    baseline: float
    n: int
    n_undefined: int
    lower_is_better: bool
    features: str
    seed: int

    @property
    def improvement_over_baseline(self) -> float:
        """Relative improvement over the random-pair baseline (positive = better than random)."""
        if not np.isfinite(self.value) or not np.isfinite(self.baseline) or self.baseline == 0:
            return float("nan")
        gain = (self.baseline - self.value) if self.lower_is_better else (self.value - self.baseline)
        return float(gain / abs(self.baseline))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["improvement_over_baseline"] = self.improvement_over_baseline
        return d


def _finite_mean(values: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(values)
    return (float(values[ok].mean()) if ok.any() else float("nan")), int((~ok).sum())


def paired_metric(
    name: str,
    row_metric: RowMetric,
    pred: np.ndarray,
    target: np.ndarray,
    *,
    lower_is_better: bool,
    features: str,
    seed: int = 0,
) -> PairedMetric:
    """Evaluate ``row_metric`` on matched rows and on deranged rows.

    Rows where either input has a non-finite value (e.g. a generated structure that could not be evaluated,
    passed as a NaN row) are left out of both the value and the baseline and counted in ``n_undefined``.
    ``pred`` and ``target`` must already have equal shapes (M, K) or (M,).
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n = int(pred.shape[0])
    axes = tuple(range(1, pred.ndim))
    usable = np.isfinite(pred).all(axis=axes) & np.isfinite(target).all(axis=axes) if n else np.zeros(0, bool)
    p, t = pred[usable], target[usable]
    matched = row_metric(p, t) if p.shape[0] else np.zeros(0)
    value, undefined = _finite_mean(matched)
    if p.shape[0] >= 2:
        perm = random_derangement(p.shape[0], seed)
        baseline, _ = _finite_mean(row_metric(p, t[perm]))
    else:
        baseline = float("nan")
    return PairedMetric(
        name=name,
        value=value,
        baseline=baseline,
        n=n,
        n_undefined=int((~usable).sum()) + undefined,
        lower_is_better=lower_is_better,
        features=features,
        seed=int(seed),
    )
