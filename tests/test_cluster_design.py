"""`dosmatgen design` on the screen's machinery: the total-DOS generator on local Ray actors, the relaxation on a
Dask LocalCluster, DFT of the best candidate through submitit's local executor (the relaxer and the DFT engine
swapped for fast test doubles; the real ones have their own cluster tests).

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_design.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from design_fixture_helpers import train_tiny_total
from screen_helpers import TESTS_DIR

pytestmark = pytest.mark.cluster


def test_design_runs_on_ray_dask_and_submitit(tmp_path):
    ckpt = train_tiny_total(tmp_path / "tiny")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "dosmatgen.cli.main", "design", "--band-gap", "2.0", "--source", "dataset", "--n", "8",
           "--dft-top-k", "1", "--set", f"generator.checkpoint={ckpt}", "--set", "run.shard_size=4", "--set", "run.top_k=2",
           "--set", "generator.ray={num_cpus: 2, num_actors: 2, timeout_s: 300}",
           "--set", "relax.loader=design_fixture_helpers:load_identity_relaxer", "--set", "relax.options={}",
           "--set", "relax.dask={cluster: local, n_workers: 2, threads_per_worker: 1, timeout_s: 600}",
           "--set", "relax.filter={min_distance: 0.0, volume_per_atom: [0.0, 1.0e9], max_formation_energy: null}",
           "--set", "dft.loader=screen_helpers:load_test_engine", "--set", "dft.options={}",
           "--set", "dft.submitit={cluster: local, timeout_min: 30}", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary" / "summary.json").read_text())
    c = summary["counts"]["design"]
    assert (c["planned"], c["sampled"], c["selected"], c["dft_done"]) == (8, 8, 2, 1)
    stages = summary["design"]["stages"]
    assert {k: v["backend"] for k, v in stages.items()} == {"sample": "ray", "relax": "dask", "rank": "inline", "dft": "submitit"}
    assert stages["sample"]["shards"] == 2 and stages["sample"]["candidates"] == 8
    assert stages["relax"]["shards"] == 2 and stages["dft"]["completed"] == 1
    assert (out / "summary" / "design_dos.png").stat().st_size > 0
