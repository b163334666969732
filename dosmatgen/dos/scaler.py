"""Per-energy-bin standard scaler for DOS features (MatDeepLearn recipe), for numpy arrays and torch tensors.

``transform(x) = (x - mean) / (std + eps)`` and ``inverse_transform(z) = z * (std + eps) + mean`` per bin
(last axis), with ``eps = 1e-5`` as in the MatDeepLearn DOS recipe, so bins that are constant over the
training set (e.g. always 0) do not divide by zero. ``mean`` and ``std`` (population std, ddof = 0) are
fitted on the **training rows only**: every training atom for the site features, every training structure
for the total-DOS features. They are kept in float64; the inverse is exact up to float rounding.

Saving: :meth:`to_arrays` / :meth:`from_arrays` (one array per key, for a Zarr group) and
:meth:`to_dict` / :meth:`from_dict` (plain Python, for a JSON file or a torch checkpoint).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

import torch

#: Added to the per-bin standard deviation (MatDeepLearn recipe).
DEFAULT_EPS = 1e-5


def _is_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _read(a: Any) -> np.ndarray:
    """np.ndarray from a numpy/Zarr array (``a[...]``) or a plain Python value."""
    return np.asarray(a[...] if hasattr(a, "shape") else a)


class PerBinStandardScaler:
    """Standardise each energy bin (last axis) with statistics of the training rows.

    Fit once with :meth:`fit`, or stream with :meth:`partial_fit` over chunks (exact: Chan et al. pairwise
    update of count, mean and sum of squared deviations). ``transform`` / ``inverse_transform`` accept a
    numpy array or a torch tensor of shape (..., n_bins) and return the same kind (torch: same device and
    dtype as the input).
    """

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None, eps: float = DEFAULT_EPS, n_samples: int = 0):
        self.eps = float(eps)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64).copy()
        self.std = None if std is None else np.asarray(std, dtype=np.float64).copy()
        self.n_samples = int(n_samples)
        self._m2: np.ndarray | None = None  # running sum of squared deviations during partial_fit
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.mean is not None:
            if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
                raise ValueError(f"mean and std must be 1-D of equal length, got {self.mean.shape} and {self.std.shape}")
            if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std)) and np.all(self.std >= 0)):
                raise ValueError("mean and std must be finite and std >= 0")
            self._m2 = self.std**2 * self.n_samples

    # ------------------------------------------------------------------ fitting
    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def n_bins(self) -> int:
        self._require_fitted()
        return int(self.mean.shape[0])

    def fit(self, rows: np.ndarray) -> "PerBinStandardScaler":
        """Fit on ``rows`` (n_rows, n_bins) (training rows only). Replaces any previous fit."""
        self.mean = self.std = self._m2 = None
        self.n_samples = 0
        return self.partial_fit(rows)

    def partial_fit(self, rows: np.ndarray) -> "PerBinStandardScaler":
        """Add ``rows`` (n_rows, n_bins) to the running statistics."""
        x = np.asarray(rows.detach().cpu().numpy() if _is_tensor(rows) else rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"scaler rows must be a non-empty (n_rows, n_bins) array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("scaler rows contain NaN or infinite values")
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        if self.mean is None:
            self.mean, self._m2, self.n_samples = mean_b, m2_b, n_b
        else:
            if x.shape[1] != self.mean.shape[0]:
                raise ValueError(f"rows have {x.shape[1]} bins, the scaler has {self.mean.shape[0]}")
            n_a = self.n_samples
            n = n_a + n_b
            delta = mean_b - self.mean
            self.mean = self.mean + delta * (n_b / n)
            self._m2 = self._m2 + m2_b + delta**2 * (n_a * n_b / n)
            self.n_samples = n
        self.std = np.sqrt(self._m2 / self.n_samples)
        return self

    # ------------------------------------------------------------------ transforms
    def _params(self, like: Any) -> tuple[Any, Any]:
        self._require_fitted()
        if _is_tensor(like):
            dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
            mean = torch.as_tensor(self.mean, dtype=dtype, device=like.device)
            scale = torch.as_tensor(self.std + self.eps, dtype=dtype, device=like.device)
            return mean, scale
        return self.mean, self.std + self.eps

    def _check_bins(self, x: Any) -> None:
        if x.shape[-1] != self.n_bins:
            raise ValueError(f"input has {x.shape[-1]} bins on its last axis, the scaler has {self.n_bins}")

    def transform(self, x: Any) -> Any:
        """(x - mean) / (std + eps) per bin; numpy in -> float64 numpy out, torch in -> torch out."""
        if not _is_tensor(x):
            x = np.asarray(x, dtype=np.float64)
        self._check_bins(x)
        mean, scale = self._params(x)
        return (x - mean) / scale

    def inverse_transform(self, z: Any) -> Any:
        """z * (std + eps) + mean per bin: the exact inverse of :meth:`transform` (up to float rounding)."""
        if not _is_tensor(z):
            z = np.asarray(z, dtype=np.float64)
        self._check_bins(z)
        mean, scale = self._params(z)
        return z * scale + mean

    # ------------------------------------------------------------------ saving
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for a Zarr group: ``mean``, ``std`` (n_bins,) float64, ``eps`` and ``n_samples`` as 0-d arrays."""
        self._require_fitted()
        return {
            "mean": self.mean.copy(),
            "std": self.std.copy(),
            "eps": np.asarray(self.eps, dtype=np.float64),
            "n_samples": np.asarray(self.n_samples, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "PerBinStandardScaler":
        """Inverse of :meth:`to_arrays` (accepts anything ``np.asarray`` reads, e.g. Zarr arrays)."""
        try:
            return cls(
                mean=_read(arrays["mean"]),
                std=_read(arrays["std"]),
                eps=float(_read(arrays["eps"])) if "eps" in arrays else DEFAULT_EPS,
                n_samples=int(_read(arrays["n_samples"])) if "n_samples" in arrays else 0,
            )
        except KeyError as err:
            raise ValueError(f"scaler arrays lack {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists of float64 values, exact): JSON- and ``torch.save``-safe."""
        self._require_fitted()
        return {
            "kind": "PerBinStandardScaler",
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "eps": self.eps,
            "n_samples": self.n_samples,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PerBinStandardScaler":
        if d.get("kind", "PerBinStandardScaler") != "PerBinStandardScaler":
            raise ValueError(f"not a PerBinStandardScaler: kind={d.get('kind')!r}")
        return cls(mean=d["mean"], std=d["std"], eps=d.get("eps", DEFAULT_EPS), n_samples=d.get("n_samples", 0))

    # ------------------------------------------------------------------ misc
    def _require_fitted(self) -> None:
        if self.mean is None:
            raise RuntimeError("PerBinStandardScaler is not fitted: call fit() on the training rows first")

    def __repr__(self) -> str:
        if not self.fitted:
            return "PerBinStandardScaler(unfitted)"
        return f"PerBinStandardScaler(n_bins={self.n_bins}, n_samples={self.n_samples}, eps={self.eps:g})"


def fit_scaler(chunks: Iterable[np.ndarray], eps: float = DEFAULT_EPS) -> PerBinStandardScaler:
    """Fit a scaler by streaming over ``chunks`` of training rows (each (n_rows, n_bins))."""
    scaler = PerBinStandardScaler(eps=eps)
    for chunk in chunks:
        if len(chunk):
            scaler.partial_fit(chunk)
    scaler._require_fitted()
    return scaler
