"""Smoothing, resampling and the two DOS featurizers."""

from __future__ import annotations

import numpy as np
import pytest
from dos_fixture_helpers import load_complete_dos, load_record

from dosmatgen.crystal import Crystal
from dosmatgen.dos.featurize import (
    read_dos_csv,
    site_features,
    site_features_from_arrays,
    total_features,
    total_features_from_arrays,
)
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID, EnergyGrid
from dosmatgen.dos.record import DOSRecord
from dosmatgen.dos.smoothing import gaussian_smooth, resample
from dosmatgen.errors import InvalidRecordError


def gaussian(e: np.ndarray, mu: float, s: float, area: float = 1.0) -> np.ndarray:
    return area * np.exp(-0.5 * ((e - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def two_atom_record(energies: np.ndarray, site_dos: np.ndarray | None, total: np.ndarray | None, rid: str = "r1") -> DOSRecord:
    crystal = Crystal(np.array([14, 14]), np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), 5.43 * np.eye(3))
    return DOSRecord(id=rid, source="test", crystal=crystal, energies=energies, site_dos=site_dos, total_dos=total, efermi=0.0)


# ----------------------------------------------------------------------------- smoothing / resampling
def test_gaussian_widths_add_in_quadrature():
    e = np.linspace(-10, 10, 4001)  # step 0.005 eV
    d = gaussian(e, 0.3, 0.1, area=2.0)
    out = resample(e, d, SITE_GRID, sigma_ev=0.1)
    expected = gaussian(SITE_GRID.energies, 0.3, np.hypot(0.1, 0.1), area=2.0)
    assert np.max(np.abs(out - expected)) < 1e-3 * expected.max()


def test_smoothing_preserves_integral():
    e = np.linspace(-12, 9, 701)
    d = gaussian(e, -2.0, 0.3, 3.0) + gaussian(e, 1.5, 0.05, 1.0) + 0.2 * (e > 4)  # non-zero up to the top edge
    _, s = gaussian_smooth(e, d, 0.2)
    assert np.trapezoid(s, e) == pytest.approx(np.trapezoid(d, e), rel=2e-3)
    assert np.all(s >= 0)


def test_resample_is_zero_outside_the_source_range_and_linear_inside():
    e = np.linspace(-3.0, 4.0, 71)
    d = 1.0 + np.sin(e) ** 2
    out = resample(e, d, SITE_GRID)
    g = SITE_GRID.energies
    inside = (g >= -3.0) & (g <= 4.0)
    assert np.all(out[~inside] == 0.0)
    np.testing.assert_allclose(out[inside], np.interp(g[inside], e, d), rtol=0, atol=1e-12)


def test_resample_works_on_any_leading_shape():
    e = np.linspace(-11, 11, 300)
    rng = np.random.default_rng(0)
    v = rng.random((2, 3, e.size))
    out = resample(e, v, TOTAL_GRID, sigma_ev=0.1)
    assert out.shape == (2, 3, 256)
    np.testing.assert_allclose(out[1, 2], resample(e, v[1, 2], TOTAL_GRID, sigma_ev=0.1), atol=1e-12)


def test_non_uniform_source_grid_smooths_like_a_uniform_one():
    uniform = np.linspace(-10, 10, 2001)
    x = np.linspace(-1, 1, 900)
    nonuniform = 10 * np.sign(x) * np.abs(x) ** 1.5  # spacing varies by orders of magnitude
    f = lambda e: gaussian(e, 0.5, 0.3) + gaussian(e, -4, 0.5)  # noqa: E731
    a = resample(uniform, f(uniform), TOTAL_GRID, sigma_ev=0.2)
    b = resample(nonuniform, f(nonuniform), TOTAL_GRID, sigma_ev=0.2)
    assert np.max(np.abs(a - b)) < 2e-2 * a.max()


def test_bad_energy_axes_are_rejected():
    e = np.linspace(-1, 1, 5)
    with pytest.raises(InvalidRecordError, match="strictly increasing"):
        resample(e[::-1], np.ones(5), TOTAL_GRID)
    with pytest.raises(InvalidRecordError, match="must match"):
        resample(e, np.ones(6), TOTAL_GRID)
    with pytest.raises(InvalidRecordError, match="NaN"):
        resample(e, np.array([1, np.nan, 1, 1, 1.0]), TOTAL_GRID)


# ----------------------------------------------------------------------------- site features
def test_site_features_of_si_fixture_match_an_independent_computation():
    record = load_record("si")
    feats = site_features(record)
    assert feats.shape == (2, 400) and feats.dtype == np.float32
    # the two Si sites are symmetry-equivalent (equal up to the fixture's rounding)
    np.testing.assert_allclose(feats[0], feats[1], rtol=0, atol=1e-3 * feats.max())
    # independent: explicit Gaussian kernel (sigma 0.1 eV) on pymatgen's spd sum, then np.interp
    cd = load_complete_dos("si")
    spd = cd.get_site_spd_dos(cd.structure[0])
    summed = sum(d.get_densities() for d in spd.values())
    e = cd.energies - cd.efermi
    step = np.mean(np.diff(e))
    k = np.arange(-40, 41) * step
    kernel = np.exp(-0.5 * (k / 0.1) ** 2)
    kernel /= kernel.sum()
    smooth = np.convolve(np.pad(summed, 40, mode="symmetric"), kernel, mode="valid")
    expected = np.interp(SITE_GRID.energies, e, smooth)
    assert np.max(np.abs(feats[0] - expected)) < 1e-3 * expected.max()


def test_site_features_are_zero_outside_the_record_window():
    e = np.linspace(-4.0, 6.0, 201)
    site = np.stack([np.stack([gaussian(e, 0, 1), gaussian(e, 1, 1), gaussian(e, -1, 0.5)])] * 2)
    feats = site_features(two_atom_record(e, site, None))
    g = SITE_GRID.energies
    assert np.all(feats[:, (g < -4.0) | (g > 6.0)] == 0)
    assert np.all(feats[:, (g > -3.5) & (g < 5.5)] > 0)


def test_site_features_reject_bad_records():
    e = np.linspace(-5, 5, 11)
    bad = np.ones((2, 3, 11))
    bad[1, 2, 4] = -1.0
    with pytest.raises(InvalidRecordError, match=r"\[record neg\].*negative"):
        site_features(two_atom_record(e, bad, None, rid="neg"))
    with pytest.raises(InvalidRecordError, match=r"\[record short\].*shape"):
        site_features(two_atom_record(e, np.ones((2, 3, 10)), None, rid="short"))
    with pytest.raises(InvalidRecordError, match="no site DOS"):
        site_features(two_atom_record(e, None, np.ones(11)))
    with pytest.raises(InvalidRecordError, match="shape"):
        site_features_from_arrays(e, np.ones(11))


# ----------------------------------------------------------------------------- total features
def test_total_features_are_per_atom_and_on_the_total_grid():
    record = load_record("nb3sn")
    feats = total_features(record)
    assert feats.shape == (256,) and feats.dtype == np.float32
    cd = load_complete_dos("nb3sn")
    expected = np.interp(TOTAL_GRID.energies, cd.energies - cd.efermi, cd.get_densities()) / 8
    np.testing.assert_allclose(feats, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total_features(record, log1p=True), np.log1p(expected), rtol=1e-5, atol=1e-6)


def test_total_features_need_a_total_dos_unless_from_sites():
    e = np.linspace(-12, 12, 241)
    site = np.full((2, 3, e.size), 0.5)
    record = two_atom_record(e, site, None, rid="nototal")
    with pytest.raises(InvalidRecordError, match=r"\[record nototal\]: record has no total DOS.*from_sites=True"):
        total_features(record)
    feats = total_features(record, from_sites=True)
    np.testing.assert_allclose(feats, 1.5)  # 2 sites x 3 channels x 0.5 / 2 atoms


def test_total_features_from_arrays_and_csv(tmp_path):
    e = np.linspace(-20, 15, 351) + 3.0  # absolute energies, E_F = 3 eV
    d = 4 * gaussian(e, 3.5, 0.8) + 0.1
    direct = total_features_from_arrays(e, d, num_atoms=4, efermi=3.0)
    np.testing.assert_allclose(direct, np.interp(TOTAL_GRID.energies, e - 3.0, d) / 4, rtol=1e-6)
    path = tmp_path / "dos.csv"
    rows = np.c_[e, d][::-1]  # unsorted on purpose
    np.savetxt(path, rows, delimiter=",", header="energy_eV,dos", comments="")
    e2, d2 = read_dos_csv(str(path), efermi=3.0)
    np.testing.assert_allclose(total_features_from_arrays(e2, d2, 4), direct, rtol=1e-6)


def test_bad_csv_names_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("energy_eV,dos\n-1,0.5\n0,-3\n1,0.2\n")
    with pytest.raises(InvalidRecordError, match="bad.csv.*negative"):
        read_dos_csv(str(path))
    path.write_text("energy_eV,dos,extra\n-1,0.5,1\n0,3,1\n")
    with pytest.raises(InvalidRecordError, match="bad.csv.*two columns"):
        read_dos_csv(str(path))
    with pytest.raises(InvalidRecordError, match="number of atoms"):
        total_features_from_arrays(np.arange(3.0), np.ones(3), 0)


def test_custom_grid():
    grid = EnergyGrid(-2.0, 2.0, 5)
    e = np.linspace(-3, 3, 61)
    feats = total_features_from_arrays(e, 2 * np.ones_like(e), 2, grid=grid)
    np.testing.assert_allclose(feats, 1.0)
