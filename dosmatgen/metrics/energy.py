"""Formation-energy-per-atom distributions: summary statistics and the distance between two distributions.

The energies themselves come from the MLFF relaxation/screening stage (eV/atom, relaxed or unrelaxed); this
module only compares sets of numbers. Non-finite energies (failed relaxations) are left out and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.stats import wasserstein_distance


@dataclass(frozen=True)
class EnergySummary:
    """Statistics of one set of formation energies (eV/atom)."""

    n: int
    n_nonfinite: int
    mean: float
    median: float
    std: float
    fraction_negative: float

    def to_dict(self) -> dict:
        return asdict(self)


def energy_summary(values: Sequence[float]) -> EnergySummary:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    ok = a[np.isfinite(a)]
    nan = float("nan")
    return EnergySummary(
        n=int(a.size),
        n_nonfinite=int(a.size - ok.size),
        mean=float(ok.mean()) if ok.size else nan,
        median=float(np.median(ok)) if ok.size else nan,
        std=float(ok.std()) if ok.size else nan,
        fraction_negative=float(np.mean(ok < 0)) if ok.size else nan,
    )


def energy_distribution_comparison(generated: Sequence[float], reference: Sequence[float]) -> dict:
    """Summaries of both sets plus the Wasserstein-1 distance between them (eV/atom; NaN if either is empty)."""
    g = np.asarray(generated, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    g_ok, r_ok = g[np.isfinite(g)], r[np.isfinite(r)]
    w1 = float(wasserstein_distance(g_ok, r_ok)) if g_ok.size and r_ok.size else float("nan")
    return {"generated": energy_summary(g).to_dict(), "reference": energy_summary(r).to_dict(), "wasserstein_1": w1}
