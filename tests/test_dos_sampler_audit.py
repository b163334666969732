"""DOSSampler audit metrics on hand-made sets."""

from __future__ import annotations

import numpy as np
from dos_sampler_helpers import synthetic_dos

from dosmatgen.dos_sampler.audit import audit, edge_jumps, mean_pairwise_cosine, pairwise, percentile_in, unique_nearest


def test_distances_by_hand():
    a = np.array([[1.0, 0, 0, 0], [1, 1, 0, 0]])
    b = np.array([[2.0, 0, 0, 0]])
    np.testing.assert_allclose(pairwise("cosine", a, b)[:, 0], [1.0, 1 / np.sqrt(2)])
    np.testing.assert_allclose(pairwise("tanimoto", a, b)[:, 0], [2 / (1 + 4 - 2), 2 / (2 + 4 - 2)])
    np.testing.assert_allclose(pairwise("mse", a, b)[:, 0], [1 / 4, 2 / 4])
    # unit-mass CDFs: [1,1,1,1] vs [.5,1,1,1] differ by 0.5 in one bin
    np.testing.assert_allclose(pairwise("w1", a, b)[:, 0], [0.0, 0.5 * 20 / 255])


def test_percentiles_are_oriented_closer_is_higher():
    dist = np.arange(1, 11, dtype=float)
    assert percentile_in(np.array([10.0]), dist, "cosine")[0] == 100.0
    assert percentile_in(np.array([0.5]), dist, "mse")[0] == 100.0
    assert percentile_in(np.array([11.0]), dist, "mse")[0] == 0.0


def test_copies_of_the_reference_are_plausible_and_noise_is_not():
    ref = synthetic_dos(60, seed=2)
    copies = audit(ref[:20], ref)
    assert copies.plausibility_rate == 1.0 and copies.four_metric_agreement == 1.0
    assert copies.nonnegative_bins == 1.0
    noise = np.random.default_rng(0).uniform(0, 1, size=(20, 256))
    assert audit(noise, ref).plausibility_rate == 0.0
    assert 0.5 < copies.reference_plausibility_rate < 1.0


def test_diversity_and_edge_jump():
    row = np.zeros(256)
    row[140:] = 1.0  # cliff edge right of a gap
    row[:100] = 1.0
    assert edge_jumps(row[None]).tolist() == [1.0]
    same = np.tile(row, (5, 1))
    assert mean_pairwise_cosine(same) == 1.0 or abs(mean_pairwise_cosine(same) - 1.0) < 1e-12
    assert unique_nearest(same, np.stack([row, 1 - row])) == 1
