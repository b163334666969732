"""`dosmatgen loop` on the screen's cluster backends: Ray actors sample, a Dask LocalCluster relaxes, the submitit
local executor runs the (analytic) DFT, and Ray Train DDP (2 CPU workers, gloo) fine-tunes the denoiser; two
rounds, round 1 sampling with round 0's fine-tuned weights.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_loop.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from loop_helpers import train_loop_models, write_loop
from screen_helpers import TESTS_DIR

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_loop_runs_on_ray_dask_and_submitit_and_fine_tunes_with_ray_train(tmp_path):
    models = train_loop_models(tmp_path / "models")
    backends = {"sample": {"num_cpus": 2, "num_actors": 2, "timeout_s": 300},
                "relax": {"cluster": "local", "n_workers": 2, "threads_per_worker": 1, "timeout_s": 300},
                "dft": {"cluster": "local", "timeout_min": 10},
                "train": {"workers": 2}}
    config = write_loop(tmp_path, models, rounds=2, backends=backends)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "dosmatgen.cli.main", "loop", str(config), "--no-progress"],
                         capture_output=True, text=True, timeout=1200, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    loop = tmp_path / "loop"
    report = json.loads((loop / "report.json").read_text())
    r0, r1 = report["rounds"]
    assert r0["metrics"]["dft_done"] >= 1 and r1["metrics"]["dft_requested"] == 3
    # the denoiser was fine-tuned by Ray Train (its output folder holds the per-rank logs and the Ray run)
    assert (loop / "round-00" / "denoiser" / "ranks").is_dir() and (loop / "round-00" / "denoiser" / "ray").is_dir()
    assert r1["denoiser"] == r0["next_denoiser"] == str(loop / "round-00" / "denoiser" / "last.pt")
    a = torch.load(models["denoiser"], weights_only=True)["model_state"]
    b = torch.load(r0["next_denoiser"], weights_only=True)["model_state"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the DFT ran through submitit (its job folders) and every record reached the grown store
    assert list((loop / "round-00" / "screen" / "submitit").glob("*_result.pkl"))
    dft = json.loads((loop / "round-01" / "dft.json").read_text())["candidates"]
    assert all(Path(c["record"]).is_file() for c in dft if c["status"] == "done")
