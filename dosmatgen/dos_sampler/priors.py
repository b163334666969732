"""Prior tokens fixed at initialization (paper Section 4.1) and tokens forbidden during sampling.

* Band gap w > 0: a run of ``gap_bins(w)`` [BG] tokens that contains E_F, placed ``"centred"`` on E_F or with the
  valence-band maximum at E_F (``"vbm"``: the run starts at bin 128, E_F is its lower edge). [BG] is forbidden
  everywhere else, so the sampled gap is exactly the prior run.
* Metallic targets (band gap 0, DOS(E_F) > 0, transparent conductor): [BG] is forbidden everywhere.
* Transparent conductor: additionally a run of value-0 tokens at least 3.1 eV wide, ending ``tcm_offset_ev`` below
  E_F, fixes the gap below the conduction band that holds E_F. For type 1 (conduction band wider than 4 eV), when
  the scales K are known, the bins from the end of that run to 4 eV above it may only take values above the
  empty-DOS threshold (``min_value``), so the band that holds E_F cannot close within 4 eV. Our addition: with
  the zero run alone, the 3,000-step ``dossampler-small`` produced no type-1 spectrum in 48 draws (docs/dos-sampler.md).

``measure_gap_placement`` decides between the placements on a set of DOS rows; ``gap_width_offset`` is the mean of
(Algorithm-1 band gap - number of [BG] bins * dE) over gapped rows, which the prior subtracts so that the
Algorithm-1 gap of a sample is on average the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dosmatgen.dos.properties import TCM_MIN_GAP_BELOW_EV, TCM_TYPE1_MIN_CB_WIDTH_EV, TOTAL_DE, ZERO_DOS_THRESHOLD, band_gap_soft
from dosmatgen.dos.property_targets import PropertyTargets
from dosmatgen.dos_sampler.tokens import BG_TOKEN, MASK_TOKEN, SEQ_LEN, VALUE_MAX, gap_bins_mask
from dosmatgen.errors import DosmatgenError

PLACEMENTS = ("centred", "vbm")
HALF = SEQ_LEN // 2


@dataclass(frozen=True)
class Prior:
    """``tokens`` (n, 256): a fixed token or MASK_TOKEN; ``forbid_bg`` (n, 256) bool; ``min_value`` (n, 256) the
    smallest value token allowed at each position (0: any), or None."""

    tokens: np.ndarray
    forbid_bg: np.ndarray
    min_value: np.ndarray | None = None


def gap_bins(width_ev: float, offset_ev: float = 0.0) -> int:
    """Number of [BG] bins for a target Algorithm-1 gap ``width_ev`` (at least 1 for a positive width)."""
    return int(min(SEQ_LEN, max(1, round((width_ev - offset_ev) / TOTAL_DE))))


def gap_interval(n_bins: int, placement: str) -> tuple[int, int]:
    """[start, stop) bin indices of a gap of ``n_bins`` bins that contains E_F (between bins 127 and 128)."""
    if placement not in PLACEMENTS:
        raise DosmatgenError(f"gap placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "vbm":
        start = HALF
    else:
        start = HALF - n_bins // 2
    start = max(0, min(start, SEQ_LEN - n_bins))
    return start, start + n_bins


def build_prior(
    targets: PropertyTargets,
    n: int,
    rng: np.random.Generator,
    *,
    placement: str = "centred",
    gap_offset_ev: float = 0.0,
    te_gap_range: tuple[float, float] = (0.2, 0.9),
    tcm_offset_range_ev: tuple[float, float] = (0.3, 1.5),
    scales: np.ndarray | None = None,
) -> Prior:
    """The prior of ``n`` samples (module docstring); ``scales`` (n,) their K, needed for the type-1 band floor."""
    tokens = np.full((n, SEQ_LEN), MASK_TOKEN, dtype=np.int64)
    forbid = np.zeros((n, SEQ_LEN), dtype=bool)
    widths = None
    if targets.band_gap is not None and targets.band_gap > 0:
        widths = np.full(n, float(targets.band_gap))
    elif targets.thermoelectric:
        widths = rng.uniform(*te_gap_range, size=n)
    if widths is not None:
        forbid[:] = True
        for i, w in enumerate(widths):
            a, b = gap_interval(gap_bins(w, gap_offset_ev), placement)
            tokens[i, a:b] = BG_TOKEN
            forbid[i, a:b] = False
    elif targets.metallic:
        forbid[:] = True
    min_value = None
    if targets.tcm is not None:
        zero_bins = int(np.ceil(TCM_MIN_GAP_BELOW_EV / TOTAL_DE)) + 1
        band_bins = int(np.ceil(TCM_TYPE1_MIN_CB_WIDTH_EV / TOTAL_DE)) + 1
        if targets.tcm == 1 and scales is not None:
            k = np.asarray(scales, dtype=np.float64)
            if k.shape != (n,) or np.any(k <= 0):
                raise DosmatgenError(f"scales must be {n} positive K values, got shape {k.shape}")
            min_value = np.zeros((n, SEQ_LEN), dtype=np.int64)
            floor = np.minimum(VALUE_MAX, np.floor(ZERO_DOS_THRESHOLD / k * VALUE_MAX).astype(np.int64) + 1)
        for i, off in enumerate(rng.uniform(*tcm_offset_range_ev, size=n)):
            stop = HALF - int(round(off / TOTAL_DE))
            tokens[i, max(0, stop - zero_bins) : stop] = 0
            if min_value is not None:
                min_value[i, stop : stop + band_bins] = floor[i]
    return Prior(tokens=tokens, forbid_bg=forbid, min_value=min_value)


def measure_gap_placement(dos: np.ndarray, min_gap_ev: float = 0.1) -> dict[str, float]:
    """How E_F sits in the gaps of ``dos`` rows: mean |error| (bins) of each placement's lower gap part, and the
    gap-width offset. Only rows with a hard gap >= ``min_gap_ev`` count."""
    mask = gap_bins_mask(dos)
    below = mask[:, :HALF].sum(axis=1)
    total = mask.sum(axis=1)
    gapped = total * TOTAL_DE >= min_gap_ev
    if not gapped.any():
        raise DosmatgenError("no gapped rows to measure the gap placement on")
    below, total = below[gapped], total[gapped]
    err = {
        "centred": float(np.mean([abs(b - (HALF - gap_interval(int(t), "centred")[0])) for b, t in zip(below, total)])),
        "vbm": float(np.mean([abs(b - (HALF - gap_interval(int(t), "vbm")[0])) for b, t in zip(below, total)])),
    }
    offset = float(np.mean(band_gap_soft(np.asarray(dos)[gapped]) - total * TOTAL_DE))
    return {
        "rows": int(gapped.sum()),
        "mean_abs_error_bins_centred": err["centred"],
        "mean_abs_error_bins_vbm": err["vbm"],
        "median_fraction_below_ef": float(np.median(below / total)),
        "gap_width_offset_ev": offset,
        "best": min(PLACEMENTS, key=lambda p: err[p]),
    }
