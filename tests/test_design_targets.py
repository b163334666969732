"""Design targets: validation naming the flag, the tolerance rule, and the target test on hand-made spectra."""

from __future__ import annotations

import re

import numpy as np
import pytest
from design_fixture_helpers import gap_dos

from dosmatgen.dos.property_targets import PropertyTargetError, PropertyTargets, meets_targets, target_error, within_tolerance
from dosmatgen.dos.properties import band_gap_soft


@pytest.mark.parametrize("kwargs, message", [
    ({"band_gap": -1.0}, "band_gap (--band-gap) must be >= 0"),
    ({"dos_ef": -0.5}, "dos_ef (--dos-ef) must be >= 0"),
    ({"n_ef": -2.0}, "n_ef (--n-ef) must be >= 0"),
    ({"band_gap": float("nan")}, "band_gap (--band-gap) must be a finite"),
    ({"band_gap": "2"}, "band_gap (--band-gap) must be a finite"),
    ({"band_gap": 2.0, "dos_ef": 1.5}, "band_gap=2.0 and dos_ef=1.5 (--band-gap, --dos-ef)"),
    ({"tcm": 1, "thermoelectric": True}, "thermoelectric and tcm (--thermoelectric, --tcm)"),
    ({"tcm": 1, "band_gap": 1.0}, "tcm=1 and band_gap=1.0 (--tcm, --band-gap)"),
    ({"tcm": 2, "dos_ef": 0.0}, "tcm=2 and dos_ef=0 (--tcm, --dos-ef)"),
    ({"tcm": 3}, "tcm (--tcm) must be 1 or 2"),
    ({"tcm": True}, "tcm (--tcm) must be 1 or 2"),
    ({"thermoelectric": True, "band_gap": 2.0}, "thermoelectric and band_gap=2.0 (--thermoelectric, --band-gap)"),
    ({"thermoelectric": True, "dos_ef": 1.0}, "thermoelectric and dos_ef=1.0 (--thermoelectric, --dos-ef)"),
    ({"band_gap": 1.0, "rel_tol": 0.0}, "rel_tol (--rel-tol) must lie in (0, 1)"),
    ({"band_gap": 1.0, "zero_abs_tol": 0.0}, "zero_abs_tol (--zero-abs-tol) must be > 0"),
])
def test_bad_targets_name_the_field_and_the_flag(kwargs, message):
    with pytest.raises(PropertyTargetError, match=re.escape(message)):
        PropertyTargets(**kwargs)


def test_no_target_is_unconditional_but_a_design_needs_one():
    assert PropertyTargets().describe() == "unconditional" and not PropertyTargets().any()
    with pytest.raises(PropertyTargetError, match="no target"):
        PropertyTargets().require_any()
    assert PropertyTargets(tcm=1).require_any().tcm == 1


def test_consistent_targets_are_accepted():
    assert PropertyTargets(band_gap=2.0, n_ef=2.0).describe() == "--band-gap 2.0 --n-ef 2.0"
    assert PropertyTargets(band_gap=0.0, dos_ef=1.5).dos_ef == 1.5  # a metal: gap 0 with DOS(E_F) > 0
    assert PropertyTargets(thermoelectric=True, band_gap=0.5, dos_ef=0.0).thermoelectric


def test_tolerance_is_relative_except_at_zero():
    v = np.array([1.79, 1.81, 2.19, 2.21])
    assert within_tolerance(v, 2.0, 0.1, 0.1).tolist() == [False, True, True, False]
    assert within_tolerance(np.array([-0.11, -0.09, 0.0, 0.09, 0.11]), 0.0, 0.1, 0.1).tolist() == [False, True, True, True, False]


def test_meets_targets_on_hand_made_spectra():
    rows = np.stack([gap_dos(2.0), gap_dos(1.0), gap_dos(0.0, dos_ef=1.5)])
    gaps = band_gap_soft(rows)
    assert abs(gaps[0] - 2.0) < 0.2 and abs(gaps[1] - 1.0) < 0.15 and gaps[2] < 0.1
    assert meets_targets(rows, PropertyTargets(band_gap=2.0)).tolist() == [True, False, False]
    assert meets_targets(rows, PropertyTargets(band_gap=0.0, dos_ef=1.5)).tolist() == [False, False, True]
    # thermoelectric without a reference: gap in [0.1, 1.0] and DOS(E_F) = 0
    assert meets_targets(rows, PropertyTargets(thermoelectric=True)).tolist() == [False, True, False]
    # with a reference, the cosine criterion also applies: a reference unlike row 1 rejects it
    other = np.zeros(256)
    other[:20] = 1.0
    assert meets_targets(rows, PropertyTargets(thermoelectric=True), te_reference=other).tolist() == [False, False, False]


def test_target_error_orders_by_distance_and_categorical_failure():
    rows = np.stack([gap_dos(2.0), gap_dos(1.0), gap_dos(0.0)])
    err = target_error(rows, PropertyTargets(band_gap=2.0))
    assert err[0] < err[1] < err[2]
    te = target_error(rows, PropertyTargets(thermoelectric=True))
    assert te.tolist() == [1.0, 0.0, 1.0]
