"""Bootstrap intervals over structures and the science-acceptance verdicts (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest

from dosmatgen.evaluation.acceptance import science_acceptance
from dosmatgen.evaluation.bootstrap import cluster_bootstrap, dos_match_intervals


def test_cluster_bootstrap_mean_interval_and_nan_sites():
    rng = np.random.default_rng(0)
    sizes = rng.integers(2, 6, size=60)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    values = rng.normal(1.0, 0.3, size=offsets[-1])
    values[3] = np.nan  # an undefined site is left out, not counted as zero
    ci = cluster_bootstrap(values, offsets, seed=1)
    assert ci["mean"] == pytest.approx(np.nanmean(values))
    assert ci["lo"] < ci["mean"] < ci["hi"] and ci["n_groups"] == 60 and ci["n_sites"] == offsets[-1] - 1
    assert cluster_bootstrap(values, offsets, seed=1) == ci  # seeded
    # a quarter of the structures: a wider interval
    small = cluster_bootstrap(values[: offsets[15]], offsets[:16], seed=1)
    assert small["hi"] - small["lo"] > ci["hi"] - ci["lo"]
    empty = cluster_bootstrap(np.full(4, np.nan), np.array([0, 2, 4]))
    assert np.isnan(empty["mean"]) and empty["n_sites"] == 0


def test_dos_match_intervals_separate_matched_from_random_pairs():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(120, 50))
    pred = target + rng.normal(scale=0.1, size=target.shape)  # close to its own target, far from the others
    offsets = np.arange(0, 121, 3)
    out = dos_match_intervals(pred, target, offsets)
    assert out["mae_gen_vs_target"]["hi"] < out["random_pair"]["lo"]


def _entry(mean, lo, hi, rp=(1.0, 0.95, 1.05), rate=None):
    m = {"dos_match_bootstrap": {"mae_gen_vs_target": {"mean": mean, "lo": lo, "hi": hi, "n_sites": 10},
                                 "random_pair": {"mean": rp[0], "lo": rp[1], "hi": rp[2], "n_sites": 10}}}
    if rate is not None:
        m["structure_match"] = {"rate": rate, "n_matched": int(rate * 10), "n": 10}
    return {"status": "ok", "metrics": m}


def test_acceptance_pass_fail_and_not_evaluated():
    results = {"cfg": {"200": _entry(0.3, 0.25, 0.35, rate=0.4), "1000": _entry(0.5, 0.45, 0.55, rate=0.1)},
               "uncond": {"1000": _entry(0.7, 0.6, 0.8)}}
    acc = science_acceptance(results, 1000)
    assert [c["passed"] for c in acc["criteria"]] == [True, True, True] and acc["all_passed"]
    # overlapping intervals fail, even with a lower mean
    results["uncond"]["1000"] = _entry(0.56, 0.5, 0.62)
    acc = science_acceptance(results, 1000)
    assert acc["criteria"][0]["passed"] is False and not acc["all_passed"]
    # a setting that was not run is not evaluated, and then nothing counts as all passed
    del results["uncond"]
    acc = science_acceptance(results, 1000)
    assert acc["criteria"][0]["passed"] is None and "not evaluated" in acc["criteria"][0]["detail"]
    assert not acc["all_passed"]
    # an undefined interval (NaN written as null in metrics.json, e.g. a resumed setting) is not evaluated
    results["uncond"] = {"1000": _entry(None, None, None)}
    acc = science_acceptance(results, 1000)
    assert acc["criteria"][0]["passed"] is None and "undefined" in acc["criteria"][0]["detail"]
    assert acc["criteria"][1]["passed"] is True and not acc["all_passed"]
