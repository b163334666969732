"""Distances between predicted site DOS and a target site DOS on :data:`~dosmatgen.dos.grid.SITE_GRID`.

All inputs are unscaled site DOS in states/eV: ``predicted`` (S, 400) for S sites, ``target`` (400,). Lower is
closer. Metrics (:class:`DistanceSpec`):

* ``mae``: mean over the 400 bins of ``|scaler(p) - scaler(t)|`` — the paper's MAE on the standardised
  features — when a per-bin scaler is given (the surrogate's or the dataset's), else the MAE in states/eV.
* ``cosine``: ``1 - p·t / (|p| |t|)`` on the unscaled DOS (0 = same shape, 1 = no overlap; scale-free). A
  site whose predicted DOS is zero everywhere gets 1.
* ``window``: weighted MAE in states/eV, ``Σ_k w_k |p_k - t_k| / Σ_k w_k``, with either a Gaussian weight
  ``w(E) = exp(-((E - center) / width)^2)`` (``width`` in eV, E relative to E_F) or a hard window
  ``lo <= E <= hi`` (weights 1 inside, 0 outside). Use it to match the DOS near E_F only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import InvalidRecordError

Metric = Literal["mae", "cosine", "window"]
METRICS: tuple[str, ...] = ("mae", "cosine", "window")


@dataclass(frozen=True)
class DistanceSpec:
    """How to measure the distance to the target.

    ``window_width`` (eV, Gaussian weight) or ``window_range`` ``(lo, hi)`` (eV, hard window) are used by
    ``metric="window"`` only; exactly one of them must be set then. ``window_center`` shifts the Gaussian.
    """

    metric: str = "mae"
    window_width: float | None = None
    window_range: tuple[float, float] | None = None
    window_center: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InvalidRecordError(f"unknown distance metric {self.metric!r}; use one of {', '.join(METRICS)}")
        if self.metric != "window":
            return
        if (self.window_width is None) == (self.window_range is None):
            raise InvalidRecordError("the window metric needs exactly one of a Gaussian width (eV) or a range LO HI (eV)")
        if self.window_width is not None and not (np.isfinite(self.window_width) and self.window_width > 0):
            raise InvalidRecordError(f"window width must be a positive number of eV, got {self.window_width}")
        if self.window_range is not None:
            lo, hi = self.window_range
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise InvalidRecordError(f"window range needs LO < HI (eV), got {lo} {hi}")
            if not SITE_GRID.window_mask(lo, hi).any():
                raise InvalidRecordError(f"window {lo} {hi} eV holds no bin of the grid [{SITE_GRID.emin}, {SITE_GRID.emax}] eV")

    def weights(self) -> np.ndarray:
        """(400,) weights of the window metric on SITE_GRID (ones for the other metrics)."""
        e = SITE_GRID.energies
        if self.metric != "window":
            return np.ones_like(e)
        if self.window_width is not None:
            return np.exp(-(((e - self.window_center) / self.window_width) ** 2))
        lo, hi = self.window_range  # type: ignore[misc]
        return SITE_GRID.window_mask(lo, hi).astype(np.float64)

    def describe(self, scaled: bool) -> str:
        """Short text for tables, e.g. ``mae (scaled)`` or ``window exp(-(E/1 eV)^2)``."""
        if self.metric == "mae":
            return "mae (scaled features)" if scaled else "mae (states/eV)"
        if self.metric == "cosine":
            return "cosine distance"
        if self.window_width is not None:
            return f"window MAE, weight exp(-((E-{self.window_center:g})/{self.window_width:g} eV)^2)"
        lo, hi = self.window_range  # type: ignore[misc]
        return f"window MAE on [{lo:g}, {hi:g}] eV"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "window_width": self.window_width, "window_range": self.window_range,
                "window_center": self.window_center}  # fmt: skip


def check_site_dos(values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float64 (..., 400); InvalidRecordError when it is not on SITE_GRID or not finite."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != SITE_GRID.n:
        raise InvalidRecordError(f"{what} has shape {a.shape}; expected {SITE_GRID.n} values per site on the model grid")
    if not np.all(np.isfinite(a)):
        raise InvalidRecordError(f"{what} contains NaN or infinite values")
    return a


def site_distances(predicted: np.ndarray, target: np.ndarray, spec: DistanceSpec, scaler: Any = None) -> np.ndarray:
    """(S,) distances of each predicted site DOS (S, 400) to ``target`` (400,); see the module docstring.

    ``scaler`` (a :class:`~dosmatgen.dos.scaler.PerBinStandardScaler` with 400 bins) is used by ``mae`` only.
    """
    p = check_site_dos(np.atleast_2d(predicted), "predicted site DOS")
    t = check_site_dos(target, "target DOS").reshape(-1)
    if spec.metric == "mae":
        if scaler is not None:
            p, t = np.asarray(scaler.transform(p), dtype=np.float64), np.asarray(scaler.transform(t[None]), dtype=np.float64)[0]
        return np.abs(p - t).mean(axis=1)
    if spec.metric == "cosine":
        norm = np.linalg.norm(p, axis=1) * np.linalg.norm(t)
        cos = np.divide(p @ t, norm, out=np.zeros(p.shape[0]), where=norm > 0)
        return 1.0 - cos
    w = spec.weights()
    return (np.abs(p - t) * w).sum(axis=1) / w.sum()
