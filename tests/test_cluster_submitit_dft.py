"""DFT stage with submitit's local executor: a job array over the top K, a failure recorded and retried."""

from __future__ import annotations

import numpy as np
import pytest
from screen_helpers import TESTS_DIR

pytest.importorskip("submitit")
from cluster.submitit_dft import SUBMISSIONS_FILE, pending_units, run_dft_stage  # noqa: E402
from dosmatgen.screen.baseline import load_random_sampler  # noqa: E402
from dosmatgen.screen.stages import RelaxOutcome, FilterConfig, rank_shard, relax_shard, sample_shard, select_top_k  # noqa: E402


def _identity_relaxer(crystals):
    return [RelaxOutcome(c, 0.0, 0.0, float(i), 0, True) for i, c in enumerate(crystals)]


def _prepared(tmp_path, top_k=3):
    from screen_helpers import small_layout

    from dosmatgen.runstore import RunStore, TargetPlan

    store = RunStore.create(tmp_path, small_layout(shard_size=4, top_k=top_k), [TargetPlan("t0", np.resize([2, 3], 8))])
    sampler = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
    for s in range(2):
        sample_shard(store, "t0", s, sampler)
        relax_shard(store, "t0", s, _identity_relaxer, FilterConfig(require_converged=False, min_distance=1.0))
        rank_shard(store, "t0", s, lambda c, t, fe: np.asarray(fe))
    select_top_k(store, "t0")
    return store


def test_local_job_array_records_failure_and_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    store = _prepared(tmp_path / "run")
    rows, _ = store.target("t0").selection()
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    (fail_dir / f"t0-{rows[1]}").touch()
    rep = run_dft_stage(store, "screen_helpers:load_test_engine", {"fail_dir": str(fail_dir)},
                        {"cluster": "local", "timeout_min": 5}, max_attempts=2, timeout_s=300, progress=False)
    assert rep.submitted == 4 and rep.completed == 3 and rep.failed == []  # 3 jobs (1 fails), then 1 retry
    assert not rep.waiting_on_scheduler
    t = store.target("t0")
    assert t.pending("dft") == [] and store.manifest.failures("dft") == []
    for k in range(3):
        d = t.read_dft(k)
        assert d["row"] == rows[k] and np.isfinite(d["site_dos"]).all() and d["efermi"] == 0.5
    import json

    history = json.loads((store.root / SUBMISSIONS_FILE).read_text())
    assert [len(h["jobs"]) for h in history] == [3, 1] and history[1]["jobs"][0]["k"] == 1


def test_given_up_after_max_attempts(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    store = _prepared(tmp_path / "run", top_k=1)
    rows, _ = store.target("t0").selection()
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    (fail_dir / f"t0-{rows[0]}").touch()
    rep = run_dft_stage(store, "screen_helpers:load_test_engine", {"fail_dir": str(fail_dir)},
                        {"cluster": "local", "timeout_min": 5}, max_attempts=1, timeout_s=300, progress=False)
    assert rep.completed == 0 and len(rep.failed) == 1 and "fails t0-" in rep.failed[0]["error"]
    assert pending_units(store, 1) == ([], rep.failed)
    # raising the attempt budget makes the failed unit retryable; it now succeeds
    rep2 = run_dft_stage(store, "screen_helpers:load_test_engine", {"fail_dir": str(fail_dir)},
                         {"cluster": "local", "timeout_min": 5}, max_attempts=2, timeout_s=300, progress=False)
    assert rep2.completed == 1 and store.target("t0").pending("dft") == []


@pytest.mark.slow
@pytest.mark.gpaw
def test_local_executor_runs_one_real_gpaw_job(tmp_path):
    pytest.importorskip("gpaw")
    store = _prepared(tmp_path / "run", top_k=1)
    rep = run_dft_stage(store, "dosmatgen.dft.engine:get_engine", {"name": "gpaw", "ecut_ev": 200.0, "kpt_density": 1.5},
                        {"cluster": "local", "timeout_min": 30}, max_attempts=1, timeout_s=1800, progress=False)
    assert rep.completed == 1, rep.failed
    d = store.target("t0").read_dft(0)
    assert np.isfinite(d["site_dos"]).all() and d["site_dos"].max() > 0 and np.isfinite(d["energy"])
