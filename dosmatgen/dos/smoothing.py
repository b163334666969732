"""Gaussian smoothing of a DOS in eV and linear resampling onto an :class:`~dosmatgen.dos.grid.EnergyGrid`.

Everything here works on the **last axis** of arrays of any shape, e.g. a total DOS (n_E,), a site DOS
(n_atoms, n_E) or an l-projected site DOS (n_atoms, n_channels, n_E). Energies are in eV; the values keep
whatever unit they came in (states/eV, states/eV/atom, ...).

Conventions
-----------
* ``sigma_ev`` is the standard deviation of the Gaussian kernel, in eV. It is converted to grid points of
  the **source** grid (``sigma_ev / step``) and applied with :func:`scipy.ndimage.gaussian_filter1d`
  (kernel truncated at 4 sigma, ``mode="reflect"``, scipy's default, as in the MatDeepLearn recipe: no
  weight leaks out of the source window, so the integral over the source window is preserved).
* A source grid whose spacing varies by more than :data:`UNIFORM_RTOL` of its mean step is first
  interpolated linearly onto a fine uniform grid (step = the smaller of its smallest spacing and
  ``sigma_ev / 5``, at most :data:`MAX_FINE_POINTS` points), smoothed there, then resampled.
* Resampling is linear interpolation onto ``grid.energies``. Target energies outside the source range
  ``[energies[0], energies[-1]]`` get exactly 0; the end points themselves are inside.
* Smoothing happens on the source grid *before* resampling, so smoothing widths add in quadrature with
  the source's own broadening (e.g. a GPAW DOS with Gaussian sigma s0 smoothed by sigma_ev has total
  width sqrt(s0**2 + sigma_ev**2)).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.errors import InvalidRecordError

#: A source grid counts as uniform when max |step - mean step| <= UNIFORM_RTOL * mean step.
UNIFORM_RTOL = 1e-2
#: Upper bound on the number of points of the fine uniform grid used for non-uniform sources.
MAX_FINE_POINTS = 200_000
#: Gaussian kernel truncation, in sigmas (scipy's default).
TRUNCATE_SIGMAS = 4.0


def check_energy_axis(energies: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (energies, values) as float64 after checking them; raise InvalidRecordError if unusable.

    ``energies`` must be 1-D, finite, strictly increasing with at least 2 points; ``values`` must be finite
    and have ``values.shape[-1] == energies.size``.
    """
    e = np.asarray(energies, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if e.ndim != 1 or e.size < 2:
        raise InvalidRecordError(f"energy grid must be 1-D with at least 2 points, got shape {e.shape}")
    if not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
        raise InvalidRecordError("energy grid must be finite and strictly increasing")
    if v.ndim == 0 or v.shape[-1] != e.size:
        raise InvalidRecordError(f"DOS has shape {v.shape}, its last axis must match the {e.size} energies")
    if not np.all(np.isfinite(v)):
        raise InvalidRecordError("DOS contains NaN or infinite values")
    return e, v


def is_uniform(energies: np.ndarray, rtol: float = UNIFORM_RTOL) -> bool:
    """True if the spacing of ``energies`` is constant within ``rtol`` of the mean step."""
    d = np.diff(np.asarray(energies, dtype=np.float64))
    mean = float(d.mean())
    return bool(np.max(np.abs(d - mean)) <= rtol * mean)


def interpolate(energies: np.ndarray, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Linear interpolation along the last axis onto ``targets`` (1-D), 0 outside ``[energies[0], energies[-1]]``.

    Shapes: ``values`` (..., n_E) -> (..., n_targets), float64.
    """
    e = np.asarray(energies, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    inside = (t >= e[0]) & (t <= e[-1])
    # index of the left neighbour, clipped so that t == e[-1] uses the last interval
    i0 = np.clip(np.searchsorted(e, t, side="right") - 1, 0, e.size - 2)
    i1 = i0 + 1
    w = (t - e[i0]) / (e[i1] - e[i0])
    out = v[..., i0] * (1.0 - w) + v[..., i1] * w
    out[..., ~inside] = 0.0
    return out


def gaussian_smooth(energies: np.ndarray, values: np.ndarray, sigma_ev: float) -> tuple[np.ndarray, np.ndarray]:
    """Smooth ``values`` (..., n_E) with a Gaussian of standard deviation ``sigma_ev`` (eV) along the last axis.

    Returns ``(energies_out, smoothed)``: the source grid itself when it is uniform, otherwise the fine
    uniform grid the data were first interpolated onto (see the module docstring).
    """
    e, v = check_energy_axis(energies, values)
    if not np.isfinite(sigma_ev) or sigma_ev < 0:
        raise ValueError(f"sigma_ev must be a finite number >= 0, got {sigma_ev}")
    if sigma_ev == 0:
        return e, v.copy()
    if not is_uniform(e):
        min_step = float(np.min(np.diff(e)))
        span = float(e[-1] - e[0])
        step = max(min(min_step, sigma_ev / 5.0), span / (MAX_FINE_POINTS - 1))
        n = int(np.ceil(span / step)) + 1
        fine = np.linspace(e[0], e[-1], n)
        v = interpolate(e, v, fine)
        e = fine
    step = float((e[-1] - e[0]) / (e.size - 1))
    smoothed = gaussian_filter1d(v, sigma=sigma_ev / step, axis=-1, mode="reflect", truncate=TRUNCATE_SIGMAS)
    return e, smoothed


def resample(
    energies: np.ndarray,
    values: np.ndarray,
    grid: EnergyGrid,
    sigma_ev: float | None = None,
) -> np.ndarray:
    """Optionally smooth by ``sigma_ev`` (eV, on the source grid), then interpolate linearly onto ``grid``.

    ``energies`` (n_E,) in eV on the same reference as ``grid`` (relative to E_F for every dosmatgen grid);
    ``values`` (..., n_E). Returns (..., grid.n) float64, exactly 0 where the grid lies outside the source range.
    Raises InvalidRecordError for an unusable energy grid or non-finite values.
    """
    e, v = check_energy_axis(energies, values)
    if sigma_ev:
        e, v = gaussian_smooth(e, v, float(sigma_ev))
    return interpolate(e, v, grid.energies)
