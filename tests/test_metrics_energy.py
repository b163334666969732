"""Formation-energy distribution summaries and the Wasserstein distance."""

import numpy as np
import pytest

from dosmatgen.metrics.energy import energy_distribution_comparison, energy_summary


def test_summary_counts_nonfinite_and_known_values():
    s = energy_summary([-1.0, -0.5, 0.5, np.nan, np.inf])
    assert (s.n, s.n_nonfinite) == (5, 2)
    assert s.mean == pytest.approx(-1.0 / 3) and s.median == pytest.approx(-0.5)
    assert s.fraction_negative == pytest.approx(2 / 3)
    assert np.isnan(energy_summary([]).mean)


def test_wasserstein_of_identical_and_shifted_sets():
    a = np.array([-1.0, -0.5, 0.0, 0.3])
    assert energy_distribution_comparison(a, a)["wasserstein_1"] == 0.0
    assert energy_distribution_comparison(a + 0.25, a)["wasserstein_1"] == pytest.approx(0.25)
    assert np.isnan(energy_distribution_comparison([np.nan], a)["wasserstein_1"])
