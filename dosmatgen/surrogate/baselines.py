"""Baselines the surrogate must beat: a per-bin training-mean predictor and a per-element mean predictor.

Both are fitted on training rows in whatever feature space they are given (the surrogate evaluation uses the
scaled features, where the MAE of the paper is defined).

* :class:`MeanDOSBaseline` predicts the per-bin mean of all training rows for every site (or crystal).
* :class:`PerElementMeanBaseline` (site DOS) predicts, for a site of element Z, the mean training site DOS of
  element Z; elements absent from training fall back to the global mean.
* :class:`CompositionMeanBaseline` (per-atom total DOS) predicts ``Σ_Z x_Z μ_Z``, with ``x_Z`` the atomic
  fraction of Z and ``μ_Z`` the fraction-weighted mean of the training crystals' total DOS.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dosmatgen.elements import MAX_Z


def _rows(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"baseline training rows must be a non-empty (rows, bins) array, got shape {a.shape}")
    return a


class MeanDOSBaseline:
    """Per-bin training mean."""

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None

    def fit(self, rows: np.ndarray) -> "MeanDOSBaseline":
        self.mean = _rows(rows).mean(axis=0)
        return self

    def predict(self, n: int) -> np.ndarray:
        """(n, K): the training mean repeated."""
        if self.mean is None:
            raise RuntimeError("MeanDOSBaseline is not fitted")
        return np.tile(self.mean, (int(n), 1))


class PerElementMeanBaseline:
    """Mean site DOS per element (atomic number), global mean for unseen elements."""

    def __init__(self) -> None:
        self.means: dict[int, np.ndarray] = {}
        self.global_mean: np.ndarray | None = None

    def fit(self, atomic_numbers: np.ndarray, rows: np.ndarray) -> "PerElementMeanBaseline":
        x = _rows(rows)
        z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        if z.shape[0] != x.shape[0]:
            raise ValueError(f"{z.shape[0]} atomic numbers for {x.shape[0]} DOS rows")
        self.global_mean = x.mean(axis=0)
        self.means = {int(e): x[z == e].mean(axis=0) for e in np.unique(z)}
        return self

    def predict(self, atomic_numbers: np.ndarray) -> np.ndarray:
        """(n, K) per-element means for sites with the given atomic numbers (n,)."""
        if self.global_mean is None:
            raise RuntimeError("PerElementMeanBaseline is not fitted")
        z = np.asarray(atomic_numbers, dtype=np.int64).reshape(-1)
        return np.stack([self.means.get(int(e), self.global_mean) for e in z]) if z.size else np.zeros((0, self.global_mean.size))

    @property
    def elements(self) -> list[int]:
        return sorted(self.means)


def composition_fractions(atomic_numbers_per_crystal: Sequence[np.ndarray], max_z: int = MAX_Z) -> np.ndarray:
    """(B, max_z) atomic fractions; column Z - 1 is the fraction of element Z."""
    out = np.zeros((len(atomic_numbers_per_crystal), max_z))
    for b, z in enumerate(atomic_numbers_per_crystal):
        z = np.asarray(z, dtype=np.int64)
        np.add.at(out[b], z - 1, 1.0 / max(len(z), 1))
    return out


class CompositionMeanBaseline:
    """Per-atom total DOS as the composition-weighted mixture of per-element mean total DOS."""

    def __init__(self) -> None:
        self.element_means: np.ndarray | None = None  # (max_z, K), NaN-free (global mean where unseen)
        self.global_mean: np.ndarray | None = None

    def fit(self, atomic_numbers_per_crystal: Sequence[np.ndarray], rows: np.ndarray) -> "CompositionMeanBaseline":
        y = _rows(rows)
        frac = composition_fractions(atomic_numbers_per_crystal)
        if frac.shape[0] != y.shape[0]:
            raise ValueError(f"{frac.shape[0]} crystals for {y.shape[0]} DOS rows")
        weight = frac.sum(axis=0)  # (max_z,)
        self.global_mean = y.mean(axis=0)
        means = np.tile(self.global_mean, (frac.shape[1], 1))
        seen = weight > 0
        means[seen] = (frac[:, seen].T @ y) / weight[seen, None]
        self.element_means = means
        return self

    def predict(self, atomic_numbers_per_crystal: Sequence[np.ndarray]) -> np.ndarray:
        if self.element_means is None:
            raise RuntimeError("CompositionMeanBaseline is not fitted")
        return composition_fractions(atomic_numbers_per_crystal) @ self.element_means
