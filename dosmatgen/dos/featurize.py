"""DOS featurizers: the per-site features of DOSMatGen and the per-atom total DOS of the DOS-intermediated paper.

Featurizer 1, site level (DOSMatGen, MatDeepLearn recipe; see docs/dos_properties.md)
    s + p + d summed per site -> Gaussian smoothing with ``sigma_ev`` (default 0.1 eV) on the source grid,
    *on top of* the source's own broadening -> linear interpolation onto :data:`SITE_GRID` (400 points on
    [-10, 10] eV relative to E_F), 0 outside the source range. Unit: states/eV per site, float32.
    The bundled GPAW data (dos-gpaw-v1) already carry a Gaussian broadening of "width" 0.1 eV, so the
    default adds up to about 0.14 eV in total (sqrt(0.1**2 + 0.1**2)), close to the MatDeepLearn recipe
    (``gaussian_filter1d(sigma=7)`` on Materials Project grids).

Featurizer 2, crystal level (DOS-intermediated generation)
    total DOS of the cell / number of atoms -> optional smoothing (off by default) -> linear interpolation
    onto :data:`TOTAL_GRID` (256 points on [E_F - 10, E_F + 10] eV, step 20/255 eV, E_F between bins 127
    and 128), 0 outside -> optional ``log1p``. Unit: states/eV/atom (before log1p), float32.

Every function raises :class:`~dosmatgen.errors.InvalidRecordError` (naming the record where there is one)
for input it cannot featurize.
"""

from __future__ import annotations

import numpy as np

from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID, EnergyGrid
from dosmatgen.dos.record import DOSRecord
from dosmatgen.dos.smoothing import check_energy_axis, resample
from dosmatgen.errors import InvalidRecordError

#: Default extra Gaussian smoothing of the site features, eV (standard deviation).
SITE_SIGMA_EV = 0.1


def _check_non_negative(values: np.ndarray, what: str) -> None:
    if values.size and values.min() < -1e-6 * max(1.0, float(np.abs(values).max())):
        raise InvalidRecordError(f"{what} has negative values (min {values.min():.3g})")


# ----------------------------------------------------------------------------- from plain arrays
def site_features_from_arrays(
    energies: np.ndarray,
    site_values: np.ndarray,
    *,
    efermi: float = 0.0,
    sigma_ev: float | None = SITE_SIGMA_EV,
    grid: EnergyGrid = SITE_GRID,
) -> np.ndarray:
    """Site features from plain arrays.

    ``energies`` (n_E,) eV; ``efermi`` (eV, same reference) is subtracted, so pass 0 for energies that are
    already relative to E_F. ``site_values`` (n_atoms, n_E) states/eV per site, channels already summed, or
    (n_atoms, n_channels, n_E), which is summed over channels here. Returns (n_atoms, grid.n) float32.
    """
    v = np.asarray(site_values, dtype=np.float64)
    if v.ndim == 3:
        v = v.sum(axis=1)
    if v.ndim != 2:
        raise InvalidRecordError(f"site DOS must be (atoms, energies) or (atoms, channels, energies), got shape {v.shape}")
    e, v = check_energy_axis(np.asarray(energies, dtype=np.float64) - float(efermi), v)
    _check_non_negative(v, "site DOS")
    return resample(e, v, grid, sigma_ev).astype(np.float32)


def total_features_from_arrays(
    energies: np.ndarray,
    total_values: np.ndarray,
    num_atoms: int,
    *,
    efermi: float = 0.0,
    sigma_ev: float | None = None,
    log1p: bool = False,
    grid: EnergyGrid = TOTAL_GRID,
) -> np.ndarray:
    """Per-atom total-DOS features from plain arrays (e.g. a user's DOS CSV).

    ``energies`` (n_E,) eV, ``efermi`` subtracted (0 if already relative to E_F); ``total_values`` (n_E,)
    states/eV of the whole cell, divided here by ``num_atoms`` (pass 1 for a DOS that is already per atom).
    Returns (grid.n,) float32 in states/eV/atom, or ``log1p`` of it.
    """
    if int(num_atoms) < 1:
        raise InvalidRecordError(f"number of atoms must be >= 1, got {num_atoms}")
    t = np.asarray(total_values, dtype=np.float64)
    if t.ndim != 1:
        raise InvalidRecordError(f"total DOS must be 1-D, got shape {t.shape}")
    e, t = check_energy_axis(np.asarray(energies, dtype=np.float64) - float(efermi), t)
    _check_non_negative(t, "total DOS")
    out = resample(e, t / int(num_atoms), grid, sigma_ev)
    if log1p:
        out = np.log1p(np.clip(out, 0.0, None))
    return out.astype(np.float32)


def read_dos_csv(path: str, *, efermi: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Read a two-column DOS CSV ``energy_eV, dos`` (header line optional, ``#`` comments allowed).

    Returns ``(energies - efermi, dos)``, both (n_E,) float64, sorted by energy. Raises InvalidRecordError
    naming the file for anything unreadable.
    """
    try:
        data = np.genfromtxt(path, delimiter=",", comments="#", dtype=np.float64)
    except (OSError, ValueError) as err:
        raise InvalidRecordError(f"cannot read DOS CSV: {err}", file=path) from None
    if data.ndim == 2 and data.shape[0] and not np.all(np.isfinite(data[0])):
        data = data[1:]  # a header line
    if data.ndim != 2 or data.shape[1] != 2 or data.shape[0] < 2:
        raise InvalidRecordError(f"expected two columns (energy_eV, dos) and at least 2 rows, got shape {data.shape}", file=path)
    order = np.argsort(data[:, 0], kind="stable")
    e, d = data[order, 0] - float(efermi), data[order, 1]
    try:
        check_energy_axis(e, d)
        _check_non_negative(d, "DOS")
    except InvalidRecordError as err:
        raise err.located(file=path) from None
    return e, d


# ----------------------------------------------------------------------------- from records
def site_features(record: DOSRecord, sigma_ev: float | None = SITE_SIGMA_EV, grid: EnergyGrid = SITE_GRID) -> np.ndarray:
    """(n_atoms, grid.n) float32 site features of ``record`` (states/eV per site), see the module docstring.

    The channels of ``record.site_dos`` are summed (s + p + d), smoothed by ``sigma_ev`` eV on the record's
    own grid (on top of the source's broadening: about 0.14 eV in total for the GPAW data, whose own width
    is 0.1 eV), interpolated onto ``grid`` and set to 0 outside the record's energy range.
    """
    if record.site_dos is None:
        raise InvalidRecordError("record has no site DOS to featurize", record=record.id)
    record.validate(check_geometry=False)
    try:
        return site_features_from_arrays(record.energies, record.site_dos_summed(), sigma_ev=sigma_ev, grid=grid)
    except InvalidRecordError as err:
        raise err.located(record=record.id) from None


def total_features(
    record: DOSRecord,
    grid: EnergyGrid = TOTAL_GRID,
    log1p: bool = False,
    sigma_ev: float | None = None,
    *,
    from_sites: bool = False,
) -> np.ndarray:
    """(grid.n,) float32 per-atom total-DOS features of ``record`` (states/eV/atom, or log1p of it).

    Uses ``record.total_dos``. A record without a total DOS raises InvalidRecordError, unless
    ``from_sites=True``: then the site DOS summed over sites and channels stands in for the total. That is
    an approximation, not the total DOS: projections miss interstitial and high-l states and may double
    count (GPAW's PAW projections over-count the total by a median 1.35x in dos-gpaw-v1), so it is off
    unless asked for explicitly.
    """
    record.validate(check_geometry=False)
    if record.total_dos is not None:
        values = np.asarray(record.total_dos, dtype=np.float64)
    elif from_sites and record.site_dos is not None:
        values = record.site_dos_summed().sum(axis=0)
    else:
        hint = "" if record.site_dos is None else " (pass from_sites=True to use the sum of the site projections)"
        raise InvalidRecordError(f"record has no total DOS{hint}", record=record.id)
    try:
        return total_features_from_arrays(
            record.energies, values, record.crystal.num_atoms, sigma_ev=sigma_ev, log1p=log1p, grid=grid
        )
    except InvalidRecordError as err:
        raise err.located(record=record.id) from None
