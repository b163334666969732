"""A real one-node Slurm (tests/run_slurm_tests.sh starts it): the user-facing sbatch script runs the CI screen to
completion, and a submitit SlurmExecutor DFT job completes. Only the config and sbatch command-line overrides
(one node, 2 CPUs) differ from a Perlmutter submission.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from screen_helpers import TESTS_DIR

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    # a node still busy with (or finishing) an earlier test's jobs is up: new jobs queue behind them
    states = {line.strip().rstrip("*~#") for line in out.stdout.splitlines()}
    return out.returncode == 0 and bool(states & {"idle", "mixed", "allocated", "completing"})


@pytest.fixture(autouse=True)
def _need_slurm():
    if not _slurm_up():
        if os.environ.get("DOSMATGEN_SLURM_REQUIRED") == "1":  # set by tests/run_slurm_tests.sh: never skip there
            pytest.fail("the Slurm started by tests/run_slurm_tests.sh has no usable node (sinfo)")
        pytest.skip("no running Slurm: use tests/run_slurm_tests.sh")


def test_sbatch_screen_script_runs_ci_config(tmp_path):
    env = {**os.environ, "DOSMATGEN_VENV": os.environ.get("VIRTUAL_ENV", sys.prefix), "DOSMATGEN_RAY_HEAD_WAIT": "10",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])), "SCRATCH": str(tmp_path / "scratch")}
    out = tmp_path / "screen.out"
    cmd = ["sbatch", "--wait", "--nodes=1", "--cpus-per-task=2", "--time=00:20:00", f"--output={out}",
           "slurm/screen.sh", "configs/screen/ci.yaml", "--set", f"run.dir={tmp_path / 'run'}",
           "--set", "dft.loader=screen_helpers:load_test_engine", "--set", "dft.options={}",
           "--set", "relax.dask.prestart=true"]  # the relax cluster starts and warms while sampling runs, as on NERSC
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
    log = out.read_text() if out.exists() else ""
    assert proc.returncode == 0, proc.stderr + log[-3000:]
    assert "GPUs/node: 4" in log  # parsed from SLURM_TRES_PER_TASK
    assert "relax workers started and warmed ahead of the relax stage" in log
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    c = summary["counts"]["au3ni-ni"]
    assert (c["sampled"], c["relaxed"], c["selected"], c["dft_done"]) == (8, 8, 1, 1)
    assert (tmp_path / "scratch" / "dosmatgen").is_dir()


def test_submitit_slurm_executor_dft_job(tmp_path, monkeypatch):
    from test_cluster_submitit_dft import _prepared

    from dosmatgen_cluster.submitit_dft import run_dft_stage

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    store = _prepared(tmp_path / "run", top_k=1)
    submitted = run_dft_stage(store, "screen_helpers:load_test_engine", {},
                              {"cluster": "slurm", "slurm_partition": "debug", "timeout_min": 10, "cpus_per_task": 1},
                              max_attempts=1, progress=False)
    assert submitted.waiting_on_scheduler and submitted.submitted == 1  # on Slurm the driver submits and returns
    job_id = submitted.job_ids[0]
    subprocess.run(["bash", "-c", f"while squeue -h -j {job_id} 2>/dev/null | grep -q .; do sleep 1; done"], timeout=600)
    collected = run_dft_stage(store, "screen_helpers:load_test_engine", {}, {"cluster": "slurm"}, max_attempts=1, progress=False)
    assert collected.submitted == 0  # --resume: nothing left to submit
    d = store.target("t0").read_dft(0)
    assert np.isfinite(d["site_dos"]).all()


def test_submitit_slurm_inner_srun_setup_and_resume_while_queued(tmp_path, monkeypatch):
    """The NERSC shape of the DFT stage on the real Slurm: one task per job, ``slurm_setup`` lines in the job
    script, the calculation started by an inner ``srun`` (``srun_args``); a --resume while the job is still
    queued or running submits nothing again (squeue), and the one after it finished collects the result."""
    from test_cluster_submitit_dft import _prepared

    from dosmatgen_cluster.submitit_dft import SUBMISSIONS_FILE, run_dft_stage

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    store = _prepared(tmp_path / "run", top_k=1)
    folder = tmp_path / "submitit"
    opts = {"cluster": "slurm", "folder": str(folder), "slurm_partition": "debug", "timeout_min": 10, "cpus_per_task": 1,
            "slurm_setup": ["export DOSMATGEN_SETUP_RAN=yes", "sleep 5"], "srun_args": ["srun", "--ntasks=1", "--overlap"]}
    first = run_dft_stage(store, "screen_helpers:load_test_engine", {}, opts, max_attempts=1, progress=False)
    assert first.waiting_on_scheduler and first.submitted == 1
    job_id = first.job_ids[0]
    again = run_dft_stage(store, "screen_helpers:load_test_engine", {}, opts, max_attempts=1, progress=False)
    assert again.submitted == 0 and again.in_flight == 1 and again.waiting_on_scheduler  # the setup sleep keeps it busy
    subprocess.run(["bash", "-c", f"while squeue -h -j {job_id} 2>/dev/null | grep -q .; do sleep 1; done"], timeout=600)
    collected = run_dft_stage(store, "screen_helpers:load_test_engine", {}, opts, max_attempts=1, progress=False)
    assert collected.submitted == 0 and collected.in_flight == 0 and store.manifest.failures("dft") == []
    assert np.isfinite(store.target("t0").read_dft(0)["site_dos"]).all()
    history = json.loads((store.root / SUBMISSIONS_FILE).read_text())
    assert [len(h["jobs"]) for h in history] == [1]  # submitted exactly once
    script = next(folder.glob(f"{job_id.split('_')[0]}*_submission.sh")).read_text()
    assert "export DOSMATGEN_SETUP_RAN=yes" in script and "--ntasks-per-node=1" in script
    import submitit

    result = submitit.SlurmJob(folder, job_id).result()
    assert result["srun"] is True  # computed by the inner srun step, not in the submitit task itself


def test_relax_stage_on_a_dask_jobqueue_slurm_cluster(tmp_path):
    """relax.dask.cluster: slurm_cluster (CPU nodes): dask-jobqueue submits the Dask workers as Slurm jobs and the
    relax stage runs its shards on them."""
    pytest.importorskip("dask_jobqueue")
    from screen_helpers import small_store

    from dosmatgen_cluster.dask_relax import dask_client, run_relax
    from dosmatgen.screen.baseline import load_random_sampler
    from dosmatgen.screen.stages import FilterConfig, sample_shard

    from dosmatgen_cluster import tls

    store = small_store(tmp_path / "run", n=6, shard_size=3)
    sampler = load_random_sampler(["Al", "Cu", "Ni"], 14.0, 1.5)
    for s in range(2):
        sample_shard(store, "t0", s, sampler)
    creds = tls.make_credentials(tmp_path / "tls")  # the worker jobs read the run's credentials (shared file system)
    opts = {"cluster": "slurm_cluster", "tls_dir": str(creds.folder), "queue": "debug", "cores": 1, "processes": 1, "memory": "1GB",
            "walltime": "00:10:00", "interface": "lo", "python": sys.executable, "jobs": 1, "min_workers": 1,
            "wait_timeout_s": 300, "log_directory": str(tmp_path / "dask-logs"), "local_directory": str(tmp_path / "w")}
    with dask_client(opts) as client:
        rep = run_relax(client, store.root, [("t0", 0), ("t0", 1)], "dosmatgen.screen.baseline:load_emt_relaxer",
                        {"fmax": 0.2, "steps": 5}, FilterConfig(require_converged=False, min_distance=1.0),
                        timeout_s=300, progress=False)
    assert (rep.shards, rep.relaxed) == (2, 6) and store.target("t0").pending("relax") == []
    assert os.getpid() not in rep.worker_pids


def test_dft_submitted_from_inside_a_gpu_job_gets_a_clean_environment(tmp_path):
    """The screen driver submits the DFT array from inside its GPU allocation. The DFT job must not inherit that
    job's Slurm variables (here SLURM_GPUS_PER_TASK and SLURM_MEM_PER_NODE, which its own srun would obey)."""
    from test_cluster_submitit_dft import _prepared

    store = _prepared(tmp_path / "run", top_k=1)
    env_out = tmp_path / "dft-env.json"
    ids_out = tmp_path / "ids.json"
    code = (
        "import json; from dosmatgen.runstore import RunStore; from dosmatgen_cluster.submitit_dft import run_dft_stage; "
        f"s = RunStore.open({str(store.root)!r}, mode='r+'); "
        f"r = run_dft_stage(s, 'fault_helpers:load_env_recording_engine', {{'out': {str(env_out)!r}}}, "
        "{'cluster': 'slurm', 'slurm_partition': 'debug', 'timeout_min': 10, 'cpus_per_task': 1}, max_attempts=1, progress=False); "
        f"open({str(ids_out)!r}, 'w').write(json.dumps(r.job_ids))"
    )
    outer = tmp_path / "outer.sh"
    outer.write_text(f"#!/bin/bash\nset -e\necho outer GPUs=$SLURM_GPUS_PER_TASK mem=$SLURM_MEM_PER_NODE\n{sys.executable} -c \"{code}\"\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{TESTS_DIR}"}
    proc = subprocess.run(["sbatch", "--wait", "--ntasks=1", "--cpus-per-task=1", "--gpus-per-task=4", "--mem=1000", "--time=00:10:00",
                           f"--output={tmp_path / 'outer.out'}", str(outer)], capture_output=True, text=True, timeout=600,
                          env=env)
    log = (tmp_path / "outer.out").read_text() if (tmp_path / "outer.out").exists() else ""
    assert proc.returncode == 0, proc.stderr + log
    assert "outer GPUs=4 mem=1000" in log  # the variables that must not leak exist in the submitting job
    (job_id,) = json.loads(ids_out.read_text())
    subprocess.run(["bash", "-c", f"while squeue -h -j {job_id} 2>/dev/null | grep -q .; do sleep 1; done"], timeout=600)
    inner = json.loads(env_out.read_text())
    assert inner["SLURM_JOB_ID"] != "" and "SLURM_GPUS_PER_TASK" not in inner
    assert inner.get("SLURM_MEM_PER_NODE") != "1000"
