"""DOS-match metrics: known answers, random-pair baselines, NaN handling and shape checks."""

import numpy as np
import pytest

from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.metrics.derangement import is_derangement, random_derangement
from dosmatgen.metrics.dos_match import (
    cosine_rows,
    dos_match_mae,
    dos_property_errors,
    dos_similarity,
    js_divergence_rows,
    pearson_rows,
    site_dos_mae,
)
from dosmatgen.metrics.inputs import MetricInputError


def _rows(m=6, k=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, k))


@pytest.mark.parametrize("n", [2, 3, 10, 101])
def test_derangement_has_no_fixed_points_and_is_seeded(n):
    p = random_derangement(n, seed=3)
    assert is_derangement(p)
    np.testing.assert_array_equal(p, random_derangement(n, seed=3))


def test_derangement_of_one_element_is_refused():
    with pytest.raises(ValueError, match="one element"):
        random_derangement(1)
    assert random_derangement(0).shape == (0,)


def test_mae_of_identical_inputs_is_zero_and_known_offsets_give_known_mae():
    y = _rows()
    r = site_dos_mae(y, y)
    assert r.value == 0.0 and r.n == 6 and r.n_undefined == 0
    assert r.baseline > 0.5  # different random rows
    assert "scaled" in r.features
    assert site_dos_mae(y + 0.25, y).value == pytest.approx(0.25)
    assert site_dos_mae(np.zeros((3, 400)), np.full((3, 400), -2.0)).value == pytest.approx(2.0)


def test_random_pair_baseline_of_identical_rows_equals_matched_value():
    row = _rows(1)[0]
    target = np.tile(row, (5, 1))
    pred = target + 0.1
    r = site_dos_mae(pred, target)
    assert r.baseline == pytest.approx(r.value) == pytest.approx(0.1)
    for m in dos_similarity(np.abs(pred), np.abs(target)).values():
        assert m.baseline == pytest.approx(m.value)


def test_baseline_uses_a_derangement_of_the_targets():
    # target rows are constants 0..4; prediction i equals target i, so every deranged pair differs by |i - p[i]|
    target = np.repeat(np.arange(5.0)[:, None], 400, axis=1)
    r = site_dos_mae(target, target, seed=7)
    p = random_derangement(5, seed=7)
    assert r.value == 0.0
    assert r.baseline == pytest.approx(np.abs(np.arange(5) - p).mean())
    assert r.improvement_over_baseline == pytest.approx(1.0)


def test_dos_match_mae_reports_the_papers_three_numbers():
    y = _rows(4)
    y_ref = y + 0.1
    y_gen = y + 0.3
    out = dos_match_mae(y_gen, y, y_ref)
    assert out["mae_gen_vs_target"].value == pytest.approx(0.3)
    assert out["mae_gen_vs_pred_ref"].value == pytest.approx(0.2)
    assert out["mae_pred_ref_vs_target"].value == pytest.approx(0.1)
    assert set(dos_match_mae(y_gen, y)) == {"mae_gen_vs_target"}


def test_nan_rows_are_left_out_and_counted():
    y = _rows(4)
    pred = y.copy()
    pred[1] = np.nan
    r = site_dos_mae(pred, y)
    assert r.value == 0.0 and r.n == 4 and r.n_undefined == 1
    all_nan = site_dos_mae(np.full((2, 400), np.nan), y[:2])
    assert np.isnan(all_nan.value) and np.isnan(all_nan.baseline) and all_nan.n_undefined == 2


def test_similarities_on_known_cases():
    a = np.abs(_rows(3))
    np.testing.assert_allclose(cosine_rows(a, 3 * a), 1.0)
    np.testing.assert_allclose(pearson_rows(a, 2 * a + 1), 1.0)
    np.testing.assert_allclose(pearson_rows(a, -a), -1.0)
    np.testing.assert_allclose(js_divergence_rows(a, 5 * a), 0.0, atol=1e-12)  # same shape after unit area
    left = np.zeros((1, 400)); left[0, :200] = 1.0
    right = np.zeros((1, 400)); right[0, 200:] = 1.0
    np.testing.assert_allclose(js_divergence_rows(left, right), 1.0)  # disjoint supports: maximal, base 2
    np.testing.assert_allclose(cosine_rows(left, right), 0.0)
    # zero rows: cosine and JS undefined (NaN), counted in n_undefined
    sim = dos_similarity(np.zeros((2, 400)), np.abs(_rows(2)))
    assert sim["cosine"].n_undefined == 2 and sim["js_divergence"].n_undefined == 2


def test_property_errors_known_gap():
    e = TOTAL_GRID.energies
    metal = np.ones((1, 256))
    gapped = ((np.abs(e) > 1.0) * 1.0)[None, :]  # no states within 1 eV of E_F
    out = dos_property_errors(np.vstack([metal, gapped]), np.vstack([metal, gapped]))
    assert set(out) == {"band_gap", "dos_fermi", "n_fermi"}
    assert all(m.value == 0.0 for m in out.values())
    # swapping the two rows makes the matched error equal to the single-pair difference
    swapped = dos_property_errors(np.vstack([gapped, metal]), np.vstack([metal, gapped]))
    assert swapped["dos_fermi"].value == pytest.approx(1.0)
    assert swapped["band_gap"].value > 1.5  # soft Algorithm-1 gap of a ~2 eV gap
    assert swapped["band_gap"].baseline == pytest.approx(0.0)  # the derangement pairs each row with its equal


def test_property_errors_on_site_grid():
    y = np.abs(_rows(3))
    out = dos_property_errors(y, y, grid=SITE_GRID)
    assert out["n_fermi"].value == 0.0


@pytest.mark.parametrize(
    "a,b",
    [((3, 400), (4, 400)), ((3, 400), (3, 256)), ((3, 400, 1), (3, 400, 1))],
)
def test_mismatched_shapes_are_rejected_with_a_clear_message(a, b):
    with pytest.raises(MetricInputError, match="shape"):
        site_dos_mae(np.zeros(a), np.zeros(b))
    with pytest.raises(ValueError):  # MetricInputError is also a ValueError
        dos_similarity(np.zeros(a), np.zeros(b))


def test_property_errors_reject_wrong_grid():
    with pytest.raises(MetricInputError, match="256"):
        dos_property_errors(np.zeros((2, 400)), np.zeros((2, 400)))


def test_to_dict_is_json_ready():
    import json

    d = site_dos_mae(_rows(3), _rows(3, seed=1)).to_dict()
    assert json.loads(json.dumps(d))["name"] == "dos_mae"
    assert "improvement_over_baseline" in d


def test_generation_metrics_suite_composes_everything():
    from dosmatgen.crystal import Crystal
    from dosmatgen.dos.scaler import PerBinStandardScaler
    from dosmatgen.metrics.suite import generation_metrics

    class FakeSurrogate:
        """Predicts a DOS row from the conditioned element only (deterministic)."""

        scaler = PerBinStandardScaler(mean=np.zeros(400), std=np.ones(400))

        def predict_sites(self, structures, site_index, scaled=True):
            from dosmatgen.metrics.inputs import to_crystal_or_none

            rows = np.full((len(structures), 400), np.nan)
            for i, (s, k) in enumerate(zip(structures, site_index)):
                c = to_crystal_or_none(s)
                if c is not None and k < c.num_atoms:
                    rows[i] = np.sin(np.linspace(0, 3, 400) * c.atomic_numbers[k])
            return rows

    nacl = Crystal([11, 17], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.4)
    kcl = Crystal([19, 17], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.7)
    refs = [nacl, kcl, nacl]
    gens = [nacl, kcl, None]
    fake = FakeSurrogate()
    y = fake.predict_sites(refs, [0, 0, 0])
    out = generation_metrics(gens, refs, [0, 0, 0], y, fake, training_structures=[nacl], timeout_s=None)
    assert out["structure_match"]["n_matched"] == 2 and out["structure_match"]["n_invalid"] == 1
    assert out["composition_match"]["rate"] == pytest.approx(2 / 3)
    assert out["validity"]["n_missing"] == 1
    assert out["uniqueness"]["n_unique"] == 2 and out["novelty"]["n_novel"] == 1
    dm = out["dos_match"]["mae_gen_vs_target"]
    assert dm["value"] == 0.0 and dm["n_undefined"] == 1 and dm["baseline"] > 0
    assert out["dos_match"]["mae_pred_ref_vs_target"]["value"] == 0.0
    import json

    json.dumps(out)  # JSON-ready
    with pytest.raises(MetricInputError):
        generation_metrics(gens, refs, [0, 0], y, fake, timeout_s=None)
