"""mpi4py bootstrap with Debian Open MPI: `mpirun -n 2`, rank 0 elects the head and broadcasts it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("mpi4py")
from dosmatgen_cluster.mpi_bootstrap import discover, elect_head  # noqa: E402


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
def test_mpirun_two_ranks_agree_on_the_head(tmp_path):
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "DOSMATGEN_HEAD_IP": "127.0.0.1"}
    proc = subprocess.run(["mpirun", "-n", "2", sys.executable, "-m", "dosmatgen_cluster.mpi_bootstrap", "--port", "7123",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in lines) == [0, 1]
    assert {r["size"] for r in lines} == {2} and {r["source"] for r in lines} == {"mpi"}
    assert {r["head"] for r in lines} == {"127.0.0.1:7123"}
    root = next(r for r in lines if r["rank"] == 0)
    assert root["gathered"] == [1, 2]


def test_slurm_environment_without_mpi(monkeypatch):
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "nid001")
    info = discover(use_mpi=False)
    assert (info.rank, info.size, info.local_rank, info.source) == (3, 4, 1, "slurm")
    _, head = elect_head(port=6379, use_mpi=False)
    assert head == "nid001:6379"


def test_single_process(monkeypatch):
    for k in ("SLURM_PROCID", "SLURM_NTASKS", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(k, raising=False)
    info, head = elect_head(port=1, use_mpi=False)
    assert (info.rank, info.size, info.source) == (0, 1, "single") and head.endswith(":1")
