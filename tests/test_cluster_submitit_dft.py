"""DFT stage with submitit's local executor: a job array over the top K, a failure recorded and retried."""

from __future__ import annotations

import os

import numpy as np
import pytest
from screen_helpers import TESTS_DIR

pytest.importorskip("submitit")
from dosmatgen_cluster.submitit_dft import SUBMISSIONS_FILE, run_dft_stage  # noqa: E402
from dosmatgen.screen.pending import pending_units  # noqa: E402
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
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
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
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
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


def _slurm_history(store, jobs):
    import json

    (store.root / SUBMISSIONS_FILE).write_text(json.dumps([{"time": 0, "cluster": "slurm", "jobs": jobs}]))


def test_resume_does_not_resubmit_queued_slurm_jobs_and_records_vanished_ones(tmp_path, monkeypatch):
    """--resume while the DFT array is still in the queue: queued/running slots are left alone; a job that left
    the queue without a result or failure record (killed by Slurm) counts as a failed attempt, once."""
    import dosmatgen_cluster.submitit_dft as sd

    store = _prepared(tmp_path / "run", top_k=3)
    _slurm_history(store, [{"job_id": "77_0", "target": "t0", "k": 0, "attempts_before": 0},
                           {"job_id": "77_1", "target": "t0", "k": 1, "attempts_before": 0},
                           {"job_id": "77_2", "target": "t0", "k": 2, "attempts_before": 0}])
    in_flight = sd.reconcile_submissions(store, {"77_0": "PENDING", "77_1": "RUNNING"})
    assert in_flight == [("t0", 0), ("t0", 1)]
    (f,) = store.manifest.failures("dft", "t0")
    assert int(f["unit"]) == 2 and f["attempts"] == 1 and "77_2 left the queue" in f["error"]
    assert sd.reconcile_submissions(store, {"77_0": "PENDING", "77_1": "RUNNING"}) == in_flight
    assert store.manifest.failures("dft", "t0")[0]["attempts"] == 1  # not counted twice

    # the stage itself: with the array still queued nothing is submitted again
    submitted = []
    monkeypatch.setattr(sd, "squeue_states", lambda ids, timeout_s=60.0: {"77_0": "PENDING", "77_1": "RUNNING", "77_2": "PENDING"})
    monkeypatch.setattr(sd, "submit", lambda *a, **k: submitted.append(a) or (None, []))
    rep = sd.run_dft_stage(store, "x:y", {}, {"cluster": "slurm"}, max_attempts=2, progress=False)
    assert submitted == [] and rep.in_flight == 3 and rep.waiting_on_scheduler and rep.submitted == 0


def test_squeue_states_parses_array_tasks_and_reports_failures(monkeypatch):
    import subprocess

    import dosmatgen_cluster.submitit_dft as sd

    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "77_0 PENDING\n77_1 RUNNING\n90 RUNNING\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert sd.squeue_states(["77_0", "77_1", "77_2"]) == {"77_0": "PENDING", "77_1": "RUNNING"}
    assert calls[0][:5] == ["squeue", "-h", "-r", "-o", "%i %T"] and calls[0][-1] == "77"
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "slurm_load_jobs error: Unable to contact slurm controller"))
    with pytest.raises(RuntimeError, match="squeue failed"):
        sd.squeue_states(["77_0"])
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "slurm_load_jobs error: Invalid job id specified"))
    assert sd.squeue_states(["77_0"]) == {}


def test_dft_job_is_requeued_with_its_own_arguments():
    """Checkpointable: on timeout or preemption submitit calls ``checkpoint`` and requeues what it returns; the
    requeued job is the same unit (completed units are skipped through the manifest, so nothing is duplicated)."""
    import submitit

    from dosmatgen_jobs.dft_job import DFTJob

    job = DFTJob("/runs/x", "dosmatgen.dft.engine:get_engine", {"name": "gpaw"}, "/runs/x/dft_work", ["srun", "-n", "4"])
    again = job.checkpoint("t0", 3)
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert again.args == ("t0", 3) and again.function is job
    assert (again.function.store_root, again.function.options, again.function.srun_args) == ("/runs/x", {"name": "gpaw"}, ["srun", "-n", "4"])


def test_submission_from_inside_a_slurm_job_does_not_leak_its_environment(tmp_path, monkeypatch):
    """The driver runs inside the GPU allocation; the DFT array must not be submitted with its SLURM_*/SRUN_*
    variables (submitit.helpers.clean_env), and the driver's environment is intact afterwards."""
    import os

    import dosmatgen_cluster.submitit_dft as sd

    store = _prepared(tmp_path / "run", top_k=1)
    for k, v in {"SLURM_JOB_ID": "777", "SLURM_CPUS_PER_TASK": "128", "SLURM_TRES_PER_TASK": "gres/gpu=4",
                 "SRUN_DEBUG": "3", "SLURM_JOB_NODELIST": "nid[001-004]", "DOSMATGEN_KEEP": "yes"}.items():
        monkeypatch.setenv(k, v)
    seen = {}

    class FakeJob:
        job_id = "9001_0"

    class FakeExecutor:
        cluster = "slurm"

        def map_array(self, fn, *args):
            seen["env"] = dict(os.environ)
            return [FakeJob() for _ in args[0]]

    def fake_make_executor(folder, options):
        seen["env_at_creation"] = {k for k in os.environ if k.startswith("SLURM_")}
        return FakeExecutor()

    monkeypatch.setattr(sd, "make_executor", fake_make_executor)
    sd.submit(store, [("t0", 0)], "screen_helpers:load_test_engine", {}, {"cluster": "slurm"})
    leaked = sorted(k for k in seen["env"] if k.startswith(("SLURM_", "SRUN_", "SBATCH_")))
    assert leaked == [] and seen["env_at_creation"] == set()
    assert seen["env"]["DOSMATGEN_KEEP"] == "yes"
    assert os.environ["SLURM_JOB_ID"] == "777" and os.environ["SRUN_DEBUG"] == "3"  # restored for the driver


def test_dft_jobs_can_start_python_inside_a_container(tmp_path):
    from dosmatgen_cluster.submitit_dft import make_executor

    ex = make_executor(tmp_path, {"cluster": "slurm", "python": "shifter --image=docker:me/dosmatgen:1 python"})
    assert ex._executor.python == "shifter --image=docker:me/dosmatgen:1 python"
    assert "python" not in ex._executor.parameters  # not passed on as an sbatch option


def test_vasp_command_lines_fill_or_share_a_perlmutter_cpu_node():
    from dosmatgen_jobs.dft_job import DFTGroupJob, engine_options, shared_node_vasp_launch, slurm_vasp_launch

    node = {"SLURM_JOB_ID": "1", "SLURM_CPUS_PER_TASK": "256"}  # a whole CPU node: 128 cores x 2 threads
    assert slurm_vasp_launch(node) == ["srun", "--overlap", "--ntasks=128", "--cpus-per-task=2", "--cpu-bind=cores", "vasp_std"]
    assert engine_options({"name": "vasp"}, node)["launch_cmd"][2] == "--ntasks=128"
    assert shared_node_vasp_launch(4, node) == ["srun", "--exact", "--nodes=1", "--ntasks=32", "--cpus-per-task=2",
                                                "--cpu-bind=cores", "vasp_std"]
    assert DFTGroupJob("/r", "l:f", {"name": "vasp"}, "/w").unit_options(2, node)["launch_cmd"][3] == "--ntasks=64"
    assert DFTGroupJob("/r", "l:f", {"name": "gpaw"}, "/w").unit_options(2, node) == {"name": "gpaw"}
    with pytest.raises(RuntimeError, match="cannot share 4 CPUs"):
        shared_node_vasp_launch(4, {"SLURM_CPUS_PER_TASK": "4"})


def test_grouped_units_run_in_the_batch_step(tmp_path):
    from dosmatgen_cluster.submitit_dft import make_executor

    grouped = make_executor(tmp_path, {"cluster": "slurm", "units_per_job": 4, "cpus_per_task": 256})
    single = make_executor(tmp_path, {"cluster": "slurm", "cpus_per_task": 256})
    assert grouped._executor.parameters["use_srun"] is False and single._executor.parameters.get("use_srun", True) is True


def test_several_units_share_one_job(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    store = _prepared(tmp_path / "run", top_k=3)
    rep = run_dft_stage(store, "screen_helpers:load_test_engine", {}, {"cluster": "local", "timeout_min": 5, "units_per_job": 2},
                        max_attempts=1, timeout_s=300, progress=False)
    assert store.target("t0").pending("dft") == [] and rep.completed == 3
    import json

    (h,) = json.loads((store.root / SUBMISSIONS_FILE).read_text())
    ids = [j["job_id"] for j in h["jobs"]]
    assert len(ids) == 3 and len(set(ids)) == 2 and ids[0] == ids[1]  # units 0 and 1 in one job, unit 2 in another
