"""Structural and SMACT compositional validity on hand-made cases."""

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.validity import compositional_validity, structural_validity, validity_summary


def _rocksalt(a=5.64, cation=11, anion=17):
    return Crystal([cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * a * 0.5 * np.sqrt(3))


def test_good_structure_is_valid():
    c = _rocksalt()
    assert structural_validity(c).valid
    assert compositional_validity(c).valid


def test_overlapping_atoms_and_tiny_cells_are_structurally_invalid():
    close = Crystal([11, 17], [[0, 0, 0], [0.05, 0, 0]], np.eye(3) * 5.0)  # 0.25 A apart
    res = structural_validity(close)
    assert not res.valid and "closest pair" in res.reason
    tiny = Crystal([6], [[0, 0, 0]], np.eye(3) * 0.4)  # volume 0.064 A^3
    assert not structural_validity(tiny).valid
    # an atom closer than 0.5 A to its own periodic image
    thin = Crystal([6], [[0, 0, 0]], np.diag([0.45, 8.0, 8.0]))
    assert not structural_validity(thin).valid and "closest pair" in structural_validity(thin).reason


def test_charge_imbalanced_composition_is_invalid():
    nacl2 = Crystal([11, 17, 17], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]], np.eye(3) * 5.0)
    res = compositional_validity(nacl2)
    assert not res.valid and "charge" in res.reason


@pytest.mark.parametrize("zs", [[14, 14], [29, 30], [26], [13, 31]])  # Si, CuZn, Fe, AlGa
def test_single_elements_and_all_metal_alloys_are_valid(zs):
    c = Crystal(zs, np.random.default_rng(0).random((len(zs), 3)), np.eye(3) * 4.0)
    assert compositional_validity(c).valid


def test_pauling_electronegativity_test_is_applied():
    # Na2Cl is charge neutral only as 2 Na(-1) + Cl(+2), which puts the anion on the less electronegative element
    na2cl = Crystal([11, 11, 17], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]], np.eye(3) * 5.0)
    assert compositional_validity(na2cl, use_pauling_test=False).valid
    assert not compositional_validity(na2cl).valid


@pytest.mark.parametrize(
    "bad",
    [None, (np.zeros(0), np.zeros((0, 3)), np.eye(3)), (np.array([8]), np.array([[np.nan, 0, 0]]), np.eye(3)), "junk",
     (np.array([200]), np.zeros((1, 3)), np.eye(3))],
)
def test_missing_empty_nan_or_junk_structures_are_invalid_without_raising(bad):
    assert not structural_validity(bad).valid
    assert not compositional_validity(bad).valid


def test_summary_rates():
    good = _rocksalt()
    close = Crystal([11, 17], [[0, 0, 0], [0.05, 0, 0]], np.eye(3) * 5.0)
    nacl2 = Crystal([11, 17, 17], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]], np.eye(3) * 5.0)
    s = validity_summary([good, close, nacl2, None])
    assert s.n == 4 and s.n_missing == 1
    assert s.structural_rate == pytest.approx(0.5)  # good, nacl2
    assert s.compositional_rate == pytest.approx(0.5)  # good, close
    assert s.valid_rate == pytest.approx(0.25)
    assert s.valid == [True, False, False, False]
    assert validity_summary([]).n == 0
