"""Dask relax stage on a LocalCluster: every shard relaxed once, by its own task, in two worker processes.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_dask_relax.py
"""

from __future__ import annotations

import numpy as np
import pytest
from screen_helpers import small_store

pytest.importorskip("distributed")
from dosmatgen_cluster.dask_relax import dask_client, run_relax  # noqa: E402
from dosmatgen.runstore import Flag  # noqa: E402
from dosmatgen.screen.baseline import load_random_sampler  # noqa: E402
from dosmatgen.screen.stages import FilterConfig, sample_shard  # noqa: E402

pytestmark = pytest.mark.cluster


def test_local_cluster_relaxes_every_shard_once(tmp_path, monkeypatch):
    import dosmatgen_cluster.dask_relax as dask_relax

    counted: list[tuple[str, float, str]] = []  # what the driver reports to the Ray dashboard counters
    monkeypatch.setattr(dask_relax.ProgressCounters, "inc", lambda self, name, value, *, target: counted.append((name, value, target)))
    store = small_store(tmp_path, n=12, shard_size=3)
    sampler = load_random_sampler(["Al", "Cu", "Ni"], 14.0, 1.5)
    for s in range(4):
        sample_shard(store, "t0", s, sampler)
    filters = FilterConfig(require_converged=False, min_distance=1.0)
    units = [("t0", s) for s in range(4)]
    with dask_client({"cluster": "local", "n_workers": 2, "threads_per_worker": 1}) as client:
        rep = run_relax(client, store.root, units, "dosmatgen.screen.baseline:load_emt_relaxer",
                        {"fmax": 0.2, "steps": 6}, filters, timeout_s=300, progress=False)
        again = run_relax(client, store.root, units, "dosmatgen.screen.baseline:load_emt_relaxer",
                          {"fmax": 0.2, "steps": 6}, filters, timeout_s=300, progress=False)
    assert (rep.shards, rep.relaxed, rep.failed) == (4, 12, 0)
    assert len(rep.worker_pids) == 2  # two worker processes shared the shards
    assert again.relaxed == 0  # the manifest makes the stage idempotent
    relaxed = sum(v for name, v, t in counted if name == dask_relax.RELAXED and t == "t0")
    failed = sum(v for name, v, t in counted if name == dask_relax.FAILED and t == "t0")
    assert (relaxed, failed) == (12, 0)
    t = store.target("t0")
    assert t.pending("relax") == []
    e0, e1 = t.column("relax/energy_unrelaxed"), t.column("relax/energy_relaxed")
    assert np.isfinite(e1).all() and (e1 <= e0 + 1e-9).all()
    assert np.isfinite(t.column("relax/formation_energy")).all()
    assert (t.column("relax/steps") == 6).sum() + (t.column("relax/steps") < 6).sum() == 12
    flags = t.column("relax/flags")
    assert not (flags & int(Flag.RELAX_FAILED)).any()
    relaxed = t.read_crystals("relax")
    sampled = t.read_crystals("sample")
    assert all(r.num_atoms == s.num_atoms and (r.atomic_numbers == s.atomic_numbers).all() for r, s in zip(relaxed, sampled))


def test_scheduler_file_cluster_as_started_by_the_batch_script(tmp_path):
    """The Slurm path of the relax stage: a scheduler and workers started as separate processes with
    ``dask scheduler/worker --scheduler-file`` (what slurm/screen.sh runs with srun --overlap), joined by the
    driver through the scheduler file."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    assert dask_cli, "the dask command (distributed) is not installed"
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([dask_cli, "scheduler", "--scheduler-file", str(sched_file), "--host", "127.0.0.1",
                               "--dashboard-address", "127.0.0.1:0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        deadline = time.time() + 60
        while not (sched_file.exists() and sched_file.stat().st_size) and time.time() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), "the scheduler did not write its file"
        procs.append(subprocess.Popen([dask_cli, "worker", "--scheduler-file", str(sched_file), "--nworkers", "2",
                                       "--nthreads", "1", "--local-directory", str(tmp_path / "w"), "--host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        store = small_store(tmp_path / "run", n=6, shard_size=3)
        sampler = load_random_sampler(["Al", "Cu", "Ni"], 14.0, 1.5)
        for s in range(2):
            sample_shard(store, "t0", s, sampler)
        filters = FilterConfig(require_converged=False, min_distance=1.0)
        opts = {"cluster": "scheduler_file", "scheduler_file": str(sched_file), "min_workers": 2, "wait_timeout_s": 120}
        with dask_client(opts) as client:
            rep = run_relax(client, store.root, [("t0", 0), ("t0", 1)], "dosmatgen.screen.baseline:load_emt_relaxer",
                            {"fmax": 0.2, "steps": 5}, filters, timeout_s=300, progress=False)
        assert (rep.shards, rep.relaxed) == (2, 6) and store.target("t0").pending("relax") == []
        assert os.getpid() not in rep.worker_pids  # relaxed in the worker processes, not in the driver
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
