"""DOS-derived properties of the DOS-intermediated generation paper (Appendix B), and unit-correct variants.

All functions take the **per-atom total DOS on TOTAL_GRID**: shape (..., 256), states/eV/atom, unscaled and
not log1p, bin i at E_i = -10 + i * dE eV relative to E_F with dE = 20/255 ~ 0.0784 eV; E_F lies halfway
between bins 127 and 128. The exact conventions, with formulas, are in ``docs/dos_properties.md``.

Paper convention (what the paper's numbers mean)
    * :func:`band_gap_soft` -- Algorithm 1: d = ReLU(d); split at E_F into d_L = flip(d[:128]) and
      d_R = d[128:]; c_s = cumsum(d_s) (a plain bin sum, no dE); m_s = ReLU(1 - k c_s) with k = 10;
      E_g = (sum m_L + sum m_R) * dE, in eV. A differentiable torch version is :func:`band_gap_soft_torch`.
    * :func:`dos_at_fermi` -- (d[127] + d[128]) / 2, states/eV/atom.
    * :func:`integrated_dos_bins` -- N(E_F) = sum(d[:128]) (Eq. 6), a bin sum in states/eV/atom (no dE).

Unit-correct variants (hard threshold ``threshold`` in states/eV/atom; a bin is *occupied* if d > threshold)
    * :func:`integrated_dos_states` -- N(E_F) * dE, states/atom below E_F within the window.
    * :func:`band_gap_hard` -- (number of empty bins contiguous with E_F, both sides) * dE, eV.
    * :func:`gap_below_fermi`, :func:`conduction_band_width`, :func:`valence_band_width` -- eV, from the runs
      of occupied and empty bins around E_F (see :func:`band_layout`); inside a band, empty runs narrower than
      ``min_gap_ev`` (0.2 eV) are bridged.

Every bin is a cell of width dE centred on its energy, so a run of n bins is n * dE wide. Runs that reach the
edge of the window are cut there (the value is then a lower bound).
"""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass, fields
from typing import Mapping

import numpy as np
import torch

from dosmatgen.dos.grid import TOTAL_GRID, EnergyGrid
from dosmatgen.errors import InvalidRecordError

#: Sharpness k of Algorithm 1's soft mask ReLU(1 - k * cumsum).
SOFT_GAP_K = 10.0
#: Bin width of TOTAL_GRID, eV (20/255).
TOTAL_DE = TOTAL_GRID.step
#: Default hard threshold, states/eV/atom: a bin with d > threshold is occupied ("non-zero DOS").
ZERO_DOS_THRESHOLD = 1e-2

#: Paper filters (Section 6): transparent conductors and thermoelectrics, eV.
TCM_MIN_GAP_BELOW_EV = 3.1
TCM_TYPE1_MIN_CB_WIDTH_EV = 4.0
TCM_TYPE2_MAX_CB_WIDTH_EV = 3.0
TE_GAP_RANGE_EV = (0.1, 1.0)
TE_MIN_COSINE = 0.9


# ----------------------------------------------------------------------------- checks
def _check_grid(grid: EnergyGrid) -> None:
    if grid.n % 2 or abs(grid.emin + grid.emax) > 1e-9:
        raise ValueError(f"DOS-derived properties need a grid symmetric about E_F with an even number of bins, got {grid}")


def _as_dos(dos: np.ndarray, grid: EnergyGrid) -> np.ndarray:
    _check_grid(grid)
    d = np.asarray(dos, dtype=np.float64)
    if d.ndim == 0 or d.shape[-1] != grid.n:
        raise InvalidRecordError(f"total-DOS features have {d.shape[-1] if d.ndim else 0} bins, expected {grid.n} (TOTAL_GRID)")
    if not np.all(np.isfinite(d)):
        raise InvalidRecordError("total-DOS features contain NaN or infinite values")
    return d


def _check_tensor(dos: torch.Tensor, grid: EnergyGrid) -> None:
    _check_grid(grid)
    if dos.shape[-1] != grid.n:
        raise InvalidRecordError(f"total-DOS features have {dos.shape[-1]} bins, expected {grid.n} (TOTAL_GRID)")


# ----------------------------------------------------------------------------- paper convention
def band_gap_soft(dos: np.ndarray, k: float = SOFT_GAP_K, grid: EnergyGrid = TOTAL_GRID) -> np.ndarray:
    """Band gap by the paper's Algorithm 1, eV. ``dos`` (..., 256) -> (...) float64.

    d <- ReLU(d); d_L <- flip(d[:T/2]), d_R <- d[T/2:]; c_s <- cumsum(d_s) (no dE);
    m_s <- ReLU(1 - k c_s); E_g <- (sum m_L + sum m_R) * dE.
    """
    d = np.maximum(_as_dos(dos, grid), 0.0)
    half = grid.n // 2
    left = np.cumsum(d[..., :half][..., ::-1], axis=-1)
    right = np.cumsum(d[..., half:], axis=-1)
    masks = np.maximum(1.0 - k * left, 0.0).sum(axis=-1) + np.maximum(1.0 - k * right, 0.0).sum(axis=-1)
    return masks * grid.step


def band_gap_soft_torch(dos: torch.Tensor, k: float = SOFT_GAP_K, grid: EnergyGrid = TOTAL_GRID) -> torch.Tensor:
    """Differentiable Algorithm 1 for a batch: ``dos`` (..., 256) tensor -> (...) tensor in eV.

    Same arithmetic as :func:`band_gap_soft`; gradients flow through every bin whose soft mask is still > 0
    (classifier guidance uses this).
    """
    _check_tensor(dos, grid)
    d = torch.relu(dos)
    half = grid.n // 2
    left = torch.cumsum(torch.flip(d[..., :half], dims=(-1,)), dim=-1)
    right = torch.cumsum(d[..., half:], dim=-1)
    masks = torch.relu(1.0 - k * left).sum(dim=-1) + torch.relu(1.0 - k * right).sum(dim=-1)
    return masks * grid.step


def dos_at_fermi(dos: np.ndarray, grid: EnergyGrid = TOTAL_GRID) -> np.ndarray:
    """DOS(E_F) = (d[127] + d[128]) / 2, states/eV/atom (linear interpolation at E_F, which lies halfway)."""
    d = _as_dos(dos, grid)
    half = grid.n // 2
    return 0.5 * (d[..., half - 1] + d[..., half])


def dos_at_fermi_torch(dos: torch.Tensor, grid: EnergyGrid = TOTAL_GRID) -> torch.Tensor:
    """Torch version of :func:`dos_at_fermi`: (..., 256) -> (...)."""
    _check_tensor(dos, grid)
    half = grid.n // 2
    return 0.5 * (dos[..., half - 1] + dos[..., half])


def integrated_dos_bins(dos: np.ndarray, grid: EnergyGrid = TOTAL_GRID) -> np.ndarray:
    """N(E_F) by the paper's Eq. 6: sum(d[:128]), a bin sum (states/eV/atom summed over bins, no dE)."""
    d = _as_dos(dos, grid)
    return d[..., : grid.n // 2].sum(axis=-1)


def integrated_dos_bins_torch(dos: torch.Tensor, grid: EnergyGrid = TOTAL_GRID) -> torch.Tensor:
    """Torch version of :func:`integrated_dos_bins`: (..., 256) -> (...)."""
    _check_tensor(dos, grid)
    return dos[..., : grid.n // 2].sum(dim=-1)


# ----------------------------------------------------------------------------- unit-correct variants
def integrated_dos_states(dos: np.ndarray, grid: EnergyGrid = TOTAL_GRID) -> np.ndarray:
    """Electrons per atom below E_F within the window: sum(d[:128]) * dE, states/atom.

    A midpoint rule: bins 0..127 are cells of width dE that tile [-10 - dE/2, E_F] exactly.
    """
    return integrated_dos_bins(dos, grid) * grid.step


@dataclass(frozen=True)
class BandLayout:
    """Runs of empty and occupied bins around E_F for one DOS row, in **bins** (multiply by dE for eV).

    A bin is occupied when d > threshold. Inside a band, empty runs narrower than ``min_gap_ev`` (dips from
    sparse k-point sampling) are bridged: they count as part of the band. Then:

    * ``gap_bins``: empty bins contiguous with E_F on both sides (never bridged): the hard band gap.
    * ``gap_below_bins``: if ``gap_bins > 0`` (E_F in a gap or at its edge), that gap; otherwise (bins 127 and
      128 both occupied, E_F inside a band) the empty run just below the band that holds E_F.
    * ``conduction_band_bins``: if ``gap_bins > 0``, the first band above the gap; otherwise the band that
      holds E_F, counted in full (below and above E_F).
    * ``valence_band_bins``: the first band below the gap counted in ``gap_below_bins``.

    Anything absent within the window is 0; runs reaching a window edge are cut there (lower bounds).
    """

    gap_bins: int
    gap_below_bins: int
    conduction_band_bins: int
    valence_band_bins: int


#: Default ``min_gap_ev``: empty runs inside a band narrower than this (1 or 2 bins of TOTAL_GRID) are bridged.
MIN_GAP_EV = 0.2


def _run_length(mask: np.ndarray, start: int, step: int, value: bool) -> int:
    """Number of consecutive entries equal to ``value`` from ``start`` walking by ``step``."""
    n, i = 0, start
    while 0 <= i < mask.size and bool(mask[i]) == value:
        n += 1
        i += step
    return n


def _band_length(occ: np.ndarray, start: int, step: int, min_gap_bins: int) -> int:
    """Bins of the band starting at ``start`` walking by ``step``; empty runs shorter than ``min_gap_bins``
    that are followed by more occupied bins within the window are bridged. 0 if ``start`` is not occupied."""
    n, i = 0, start
    while True:
        run = _run_length(occ, i, step, True)
        n += run
        i += run * step
        if run == 0:
            return n
        empty = _run_length(occ, i, step, False)
        end = i + empty * step
        if 0 < empty < min_gap_bins and 0 <= end < occ.size:
            n += empty
            i = end
            continue
        return n


def band_layout(
    dos_row: np.ndarray,
    threshold: float = ZERO_DOS_THRESHOLD,
    grid: EnergyGrid = TOTAL_GRID,
    min_gap_ev: float = MIN_GAP_EV,
) -> BandLayout:
    """The :class:`BandLayout` of one DOS row (256,)."""
    d = _as_dos(dos_row, grid)
    if d.ndim != 1:
        raise ValueError(f"band_layout takes one DOS row, got shape {d.shape}")
    occ = d > threshold
    half = grid.n // 2
    min_gap_bins = int(np.ceil(min_gap_ev / grid.step - 1e-9))  # an empty run of n bins is bridged if n*dE < min_gap_ev
    n_left = _run_length(occ, half - 1, -1, False)  # empty bins from 127 downward
    n_right = _run_length(occ, half, +1, False)  # empty bins from 128 upward
    gap = n_left + n_right
    if gap > 0:
        # E_F in (or at the edge of) a gap: valence band below it, conduction band above it
        gap_below = gap
        vb = _band_length(occ, half - 1 - n_left, -1, min_gap_bins)
        cb = _band_length(occ, half + n_right, +1, min_gap_bins)
    else:
        # E_F inside a band (bins 127 and 128 both occupied): that band is the conduction band
        below = _band_length(occ, half - 1, -1, min_gap_bins)
        cb = below + _band_length(occ, half, +1, min_gap_bins)
        bottom = half - below  # first index below the band
        gap_below = _run_length(occ, bottom - 1, -1, False)
        vb = _band_length(occ, bottom - 1 - gap_below, -1, min_gap_bins)
    return BandLayout(gap, gap_below, cb, vb)


def _layouts(dos: np.ndarray, threshold: float, grid: EnergyGrid, min_gap_ev: float = MIN_GAP_EV) -> np.ndarray:
    """(..., 4) int array of BandLayout fields for every row of ``dos`` (..., 256)."""
    d = _as_dos(dos, grid)
    flat = d.reshape(-1, grid.n)
    rows = [astuple(band_layout(row, threshold, grid, min_gap_ev)) for row in flat]
    return np.array(rows, dtype=np.int64).reshape(d.shape[:-1] + (4,))


def band_gap_hard(dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD, grid: EnergyGrid = TOTAL_GRID) -> np.ndarray:
    """Hard band gap, eV: (empty bins contiguous with E_F on both sides) * dE. 0 when bins 127 and 128 are occupied.

    Algorithm 1 with the soft mask replaced by a hard one (a side stops at its first bin with d > threshold).
    """
    return _layouts(dos, threshold, grid)[..., 0] * grid.step


def gap_below_fermi(
    dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD, grid: EnergyGrid = TOTAL_GRID, min_gap_ev: float = MIN_GAP_EV
) -> np.ndarray:
    """Width (eV) of the nearest empty region at or below E_F (see :class:`BandLayout`).

    For a metal or degenerate semiconductor (E_F inside a band) it is the valence-conduction gap below the band
    that holds E_F, as transparent conductors need; for an insulator it is the band gap itself.
    """
    return _layouts(dos, threshold, grid, min_gap_ev)[..., 1] * grid.step


def conduction_band_width(
    dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD, grid: EnergyGrid = TOTAL_GRID, min_gap_ev: float = MIN_GAP_EV
) -> np.ndarray:
    """Width (eV) of the conduction band: the band holding E_F, else the first occupied run above the gap."""
    return _layouts(dos, threshold, grid, min_gap_ev)[..., 2] * grid.step


def valence_band_width(
    dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD, grid: EnergyGrid = TOTAL_GRID, min_gap_ev: float = MIN_GAP_EV
) -> np.ndarray:
    """Width (eV) of the valence band: the first occupied run below the gap measured by :func:`gap_below_fermi`."""
    return _layouts(dos, threshold, grid, min_gap_ev)[..., 3] * grid.step


# ----------------------------------------------------------------------------- all at once
@dataclass(frozen=True)
class DerivedProperties:
    """DOS-derived properties of one per-atom total DOS on TOTAL_GRID (see docs/dos_properties.md).

    Paper convention: ``band_gap`` (Algorithm 1, eV), ``dos_fermi`` (states/eV/atom), ``n_fermi`` (Eq. 6 bin
    sum). Unit-correct: ``n_fermi_states`` (states/atom), ``band_gap_hard``, ``gap_below_fermi``,
    ``conduction_band_width``, ``valence_band_width`` (eV, hard threshold).
    """

    band_gap: float
    dos_fermi: float
    n_fermi: float
    n_fermi_states: float
    band_gap_hard: float
    gap_below_fermi: float
    conduction_band_width: float
    valence_band_width: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: Names (and order) of the derived properties, as stored under ``properties/<name>`` in a dataset store.
PROPERTY_NAMES: tuple[str, ...] = tuple(f.name for f in fields(DerivedProperties))
#: Unit of each property.
PROPERTY_UNITS: dict[str, str] = {
    "band_gap": "eV (Algorithm 1, soft)",
    "dos_fermi": "states/eV/atom",
    "n_fermi": "bin sum of states/eV/atom (Eq. 6)",
    "n_fermi_states": "states/atom",
    "band_gap_hard": "eV",
    "gap_below_fermi": "eV",
    "conduction_band_width": "eV",
    "valence_band_width": "eV",
}


def derived_properties_batch(
    dos: np.ndarray,
    threshold: float = ZERO_DOS_THRESHOLD,
    k: float = SOFT_GAP_K,
    grid: EnergyGrid = TOTAL_GRID,
    min_gap_ev: float = MIN_GAP_EV,
) -> dict[str, np.ndarray]:
    """Every derived property of ``dos`` (B, 256) (or (..., 256)) as name -> (B,) float32 arrays."""
    d = _as_dos(dos, grid)
    lay = _layouts(d, threshold, grid, min_gap_ev) * grid.step
    out = {
        "band_gap": band_gap_soft(d, k, grid),
        "dos_fermi": dos_at_fermi(d, grid),
        "n_fermi": integrated_dos_bins(d, grid),
        "n_fermi_states": integrated_dos_states(d, grid),
        "band_gap_hard": lay[..., 0],
        "gap_below_fermi": lay[..., 1],
        "conduction_band_width": lay[..., 2],
        "valence_band_width": lay[..., 3],
    }
    return {name: np.asarray(out[name], dtype=np.float32) for name in PROPERTY_NAMES}


def derived_properties(
    total_features_256: np.ndarray,
    threshold: float = ZERO_DOS_THRESHOLD,
    k: float = SOFT_GAP_K,
    grid: EnergyGrid = TOTAL_GRID,
    min_gap_ev: float = MIN_GAP_EV,
) -> DerivedProperties:
    """:class:`DerivedProperties` of one per-atom total DOS row (256,) (unscaled, not log1p)."""
    d = _as_dos(total_features_256, grid)
    if d.ndim != 1:
        raise ValueError(f"derived_properties takes one DOS row, use derived_properties_batch for shape {d.shape}")
    values = derived_properties_batch(d[None], threshold, k, grid, min_gap_ev)
    return DerivedProperties(**{name: float(v[0]) for name, v in values.items()})


# ----------------------------------------------------------------------------- paper filters
def cosine_similarity(dos: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """<x, y> / (|x| |y|) along the last axis (0 where either vector is all zero). Shapes broadcast."""
    x = np.asarray(dos, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    num = (x * y).sum(axis=-1)
    den = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _props(dos_or_props: np.ndarray | Mapping[str, np.ndarray] | DerivedProperties, threshold: float) -> Mapping[str, np.ndarray]:
    if isinstance(dos_or_props, DerivedProperties):
        return {k: np.asarray(v) for k, v in dos_or_props.as_dict().items()}
    if isinstance(dos_or_props, Mapping):
        return {k: np.asarray(v) for k, v in dos_or_props.items()}
    return derived_properties_batch(dos_or_props, threshold)


def transparent_conductor_mask(
    dos_or_props: np.ndarray | Mapping[str, np.ndarray] | DerivedProperties,
    tcm_type: int | None = None,
    *,
    min_gap_below_ev: float = TCM_MIN_GAP_BELOW_EV,
    type1_min_cb_width_ev: float = TCM_TYPE1_MIN_CB_WIDTH_EV,
    type2_max_cb_width_ev: float = TCM_TYPE2_MAX_CB_WIDTH_EV,
    require_valence_band: bool = True,
    threshold: float = ZERO_DOS_THRESHOLD,
) -> np.ndarray:
    """Transparent-conducting-material criteria of the paper (Section 6.1), as a boolean array.

    (1) ``gap_below_fermi >= 3.1`` eV; (2) DOS(E_F) non-zero: ``dos_fermi > threshold``; (3) conduction
    band width ``> 4`` eV for type 1 (degenerate semiconductors), ``< 3`` eV for type 2 (gapped metals);
    ``tcm_type=None`` accepts either. With ``require_valence_band`` (our addition, on by default) the gap
    must have a filled band below it within the window (``valence_band_width > 0``), which rules out simple
    metals such as Li whose only "gap below E_F" runs to the bottom of the window. Takes DOS rows
    (..., 256) (properties computed with ``threshold``) or precomputed properties.
    """
    if tcm_type not in (None, 1, 2):
        raise ValueError(f"tcm_type must be 1, 2 or None, got {tcm_type!r}")
    p = _props(dos_or_props, threshold)
    base = (p["gap_below_fermi"] >= min_gap_below_ev - 1e-9) & (p["dos_fermi"] > threshold)
    type1 = p["conduction_band_width"] > type1_min_cb_width_ev
    type2 = p["conduction_band_width"] < type2_max_cb_width_ev
    width_ok = type1 if tcm_type == 1 else type2 if tcm_type == 2 else (type1 | type2)
    if require_valence_band:
        base = base & (p["valence_band_width"] > 0)
    return np.asarray(base & width_ok)


def thermoelectric_mask(
    dos: np.ndarray,
    reference_dos: np.ndarray,
    *,
    gap_range_ev: tuple[float, float] = TE_GAP_RANGE_EV,
    min_cosine: float = TE_MIN_COSINE,
    gap: str = "soft",
    threshold: float = ZERO_DOS_THRESHOLD,
) -> np.ndarray:
    """Thermoelectric filter of the paper (Section 6.2), as a boolean array over the rows of ``dos`` (..., 256).

    (1) band gap in [0.1, 1.0] eV (``gap="soft"``: Algorithm 1, the paper's band gap; ``"hard"``:
    :func:`band_gap_hard`); (2) DOS(E_F) = 0, i.e. ``dos_fermi <= threshold``; (3) cosine similarity with
    ``reference_dos`` (256,) or (..., 256) above 0.9.
    """
    if gap not in ("soft", "hard"):
        raise ValueError(f"gap must be 'soft' or 'hard', got {gap!r}")
    d = _as_dos(dos, TOTAL_GRID)
    ref = _as_dos(reference_dos, TOTAL_GRID)
    eg = band_gap_soft(d) if gap == "soft" else band_gap_hard(d, threshold)
    lo, hi = gap_range_ev
    return np.asarray((eg >= lo) & (eg <= hi) & (dos_at_fermi(d) <= threshold) & (cosine_similarity(d, ref) > min_cosine))


def within_tolerance(values: np.ndarray, target: float, rel_tol: float, zero_abs_tol: float) -> np.ndarray:
    """Whether derived properties meet a scalar target, elementwise (the paper's Table 11 rule):
    |y − y*| <= rel_tol·|y*|, or |y| <= zero_abs_tol when y* = 0."""
    v = np.asarray(values, dtype=np.float64)
    tol = zero_abs_tol if target == 0 else rel_tol * abs(target)
    return np.abs(v - target) <= tol + 1e-12
