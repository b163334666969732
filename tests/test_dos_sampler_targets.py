"""The DOSSampler's rejection filter on hand-made spectra (validation of the targets: tests/test_design_targets.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos_sampler.rejection import accept_mask, within_tolerance
from dosmatgen.dos.property_targets import PropertyTargets
from dosmatgen.errors import DosmatgenError

DE = TOTAL_GRID.step


def test_consistent_targets_are_accepted():
    assert PropertyTargets(band_gap=2.0, dos_ef=0.0, n_ef=60.0).gapped
    assert PropertyTargets(band_gap=0.0, dos_ef=1.5).metallic
    assert PropertyTargets(tcm=1).metallic
    assert PropertyTargets(thermoelectric=True, band_gap=0.5).gapped


def _gapped(gap_bins: int, level: float = 1.0) -> np.ndarray:
    d = np.full(256, level)
    a = 128 - gap_bins // 2
    d[a : a + gap_bins] = 0.0
    return d


def test_tolerance_rule_relative_and_absolute_at_zero():
    assert within_tolerance(np.array([1.8, 2.2, 1.79, 2.21]), 2.0, 0.1, 0.1).tolist() == [True, True, False, False]
    assert within_tolerance(np.array([0.1, -0.1, 0.11]), 0.0, 0.1, 0.1).tolist() == [True, True, False]


def test_rejection_band_gap_exact_on_hand_made_spectra():
    # a flat DOS of 1 state/eV/atom with n empty bins: Algorithm 1 gives exactly n * dE (the first occupied bin
    # already brings the cumulative sum to 1 > 1/k)
    n_target = round(2.0 / DE)
    dos = np.stack([_gapped(n) for n in (n_target, 23, 28, 0)])
    gaps = np.array([n_target, 23, 28, 0]) * DE  # 2.039, 1.804, 2.196, 0
    assert np.abs(gaps[1] - 2.0) <= 0.2 and np.abs(gaps[2] - 2.0) <= 0.2
    ok = accept_mask(dos, PropertyTargets(band_gap=2.0))
    assert ok.tolist() == [True, True, True, False]
    assert accept_mask(dos, PropertyTargets(band_gap=2.0, rel_tol=0.05)).tolist() == [True, False, False, False]
    assert accept_mask(dos, PropertyTargets(band_gap=0.0)).tolist() == [False, False, False, True]


def test_rejection_dos_ef_and_n_ef_exact():
    dos = np.stack([np.full(256, v) for v in (1.5, 1.36, 1.66, 0.05)])
    ok = accept_mask(dos, PropertyTargets(dos_ef=1.5))
    assert ok.tolist() == [True, True, False, False]
    assert accept_mask(dos, PropertyTargets(dos_ef=0.0)).tolist() == [False, False, False, True]
    # N(E_F) = sum of the 128 bins below E_F
    rows = np.stack([np.full(256, v) for v in (1.5, 1.36, 1.3, 1.66)])  # N(E_F) = 192, 174.08, 166.4, 212.48
    assert accept_mask(rows, PropertyTargets(n_ef=192.0)).tolist() == [True, True, False, False]


def test_rejection_transparent_conductor_types():
    e = TOTAL_GRID.energies
    def tcm(cb_top: float) -> np.ndarray:
        d = np.zeros(256)
        d[(e > -9.0) & (e < -5.0)] = 1.0  # valence band
        d[(e > -1.0) & (e < cb_top)] = 0.5  # conduction band holding E_F, gap of 4 eV below it
        return d
    dos = np.stack([tcm(4.0), tcm(1.0), _gapped(40)])  # CB width 5 eV (type 1), 2 eV (type 2), an insulator
    assert accept_mask(dos, PropertyTargets(tcm=1)).tolist() == [True, False, False]
    assert accept_mask(dos, PropertyTargets(tcm=2)).tolist() == [False, True, False]


def test_rejection_thermoelectric_uses_the_reference():
    ref = _gapped(round(0.5 / DE))
    other_shape = ref.copy()
    other_shape[:60] = 20.0  # same gap, cosine to ref well below 0.9
    wide = _gapped(round(2.0 / DE))
    ok = accept_mask(np.stack([ref * 3.0, other_shape, wide]), PropertyTargets(thermoelectric=True), reference_te_dos=ref)
    assert ok.tolist() == [True, False, False]
    with pytest.raises(DosmatgenError, match="reference"):
        accept_mask(ref[None], PropertyTargets(thermoelectric=True))
