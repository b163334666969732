"""Dask relax stage on a LocalCluster: every shard relaxed once, by its own task, in two worker processes.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_dask_relax.py
"""

from __future__ import annotations

import numpy as np
import pytest
from screen_helpers import small_store

pytest.importorskip("distributed")
from dosmatgen_cluster import tls  # noqa: E402
from dosmatgen_cluster.dask_relax import dask_client, run_relax  # noqa: E402
from dask_process_helpers import DaskProcesses  # noqa: E402
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


def _sampled_store(root, n, shard_size=3):
    store = small_store(root, n=n, shard_size=shard_size)
    sampler = load_random_sampler(["Al", "Cu", "Ni"], 14.0, 1.5)
    for s in range(n // shard_size):
        sample_shard(store, "t0", s, sampler)
    return store


def test_scheduler_file_cluster_as_started_by_the_batch_script(tmp_path):
    """The Slurm path of the relax stage: a TLS scheduler and workers started as separate processes with
    ``dask scheduler/worker --scheduler-file`` and the run's credentials (what slurm/screen.sh runs with
    srun --overlap), joined by the driver through the scheduler file."""
    import os

    creds = tls.make_credentials(tmp_path / "tls")
    procs = DaskProcesses(tmp_path, creds.folder)
    try:
        assert procs.start_scheduler().startswith("tls://")
        procs.start_worker("n0", nworkers=2)
        store = _sampled_store(tmp_path / "run", 6)
        filters = FilterConfig(require_converged=False, min_distance=1.0)
        opts = {"cluster": "scheduler_file", "scheduler_file": str(procs.scheduler_file), "min_workers": 2, "wait_timeout_s": 120}
        with dask_client(opts) as client:  # tls_dir defaults to <scheduler file folder>/tls
            rep = run_relax(client, store.root, [("t0", 0), ("t0", 1)], "dosmatgen.screen.baseline:load_emt_relaxer",
                            {"fmax": 0.2, "steps": 5}, filters, timeout_s=300, progress=False)
        assert (rep.shards, rep.relaxed) == (2, 6) and store.target("t0").pending("relax") == []
        assert os.getpid() not in rep.worker_pids  # relaxed in the worker processes, not in the driver
    finally:
        procs.stop()


def test_credentials_are_private_files(tmp_path):
    creds = tls.make_credentials(tmp_path / "run" / "tls")
    assert creds.folder.stat().st_mode & 0o777 == 0o700
    for f in (creds.ca, creds.cert, creds.key):
        assert f.stat().st_mode & 0o777 == 0o600, f
    with pytest.raises(FileExistsError, match="already exist"):
        tls.make_credentials(creds.folder)
    creds.key.chmod(0o644)
    with pytest.raises(PermissionError, match="key.pem"):
        tls.security(creds.folder)


def test_tls_scheduler_refuses_clients_without_the_run_certificate(tmp_path):
    """A client with no certificate, or with another run's certificate, cannot talk to the scheduler."""
    from distributed import Client

    creds = tls.make_credentials(tmp_path / "tls")
    other = tls.make_credentials(tmp_path / "other-run")
    procs = DaskProcesses(tmp_path, creds.folder)
    try:
        address = procs.start_scheduler()
        assert address.startswith("tls://")
        with Client(address, security=tls.security(creds.folder), timeout="30s") as ok:
            assert ok.scheduler_info()["address"] == address
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=tls.security(other.folder), timeout="5s")
        with pytest.raises((OSError, TimeoutError, TypeError, ValueError)):
            Client(address, timeout="5s")  # no credentials at all
        plain = address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(plain, timeout="5s")  # speaking plain TCP to the TLS port
        with pytest.raises(RuntimeError, match="does not use TLS"):
            with dask_client({"cluster": "address", "scheduler_address": plain}):
                pass
    finally:
        procs.stop()


def test_local_cluster_uses_tls_by_default():
    with dask_client({"cluster": "local", "n_workers": 1}) as client:
        assert client.scheduler.address.startswith("tls://")
        assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])


def test_failing_relax_shard_is_retried_then_given_up(tmp_path, monkeypatch):
    """An MLFF exception costs the shard one attempt; a shard that keeps failing is given up with its reason and
    the other shards are relaxed."""
    import os

    from fault_helpers import crystal_key
    from screen_helpers import TESTS_DIR

    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    store = _sampled_store(tmp_path / "run", 12)
    t = store.target("t0")
    transient, poisoned = (crystal_key(t.read_crystals("sample", s)[0]) for s in (0, 2))
    filters = FilterConfig(require_converged=False, min_distance=1.0)
    with dask_client({"cluster": "local", "n_workers": 2}) as client:
        rep = run_relax(client, store.root, [("t0", s) for s in range(4)], "fault_helpers:load_flaky_relaxer",
                        {"fail": {transient: 1, poisoned: 99}, "counter_dir": str(tmp_path / "c")}, filters,
                        timeout_s=300, max_shard_attempts=2, progress=False)
    assert t.pending("relax") == [2] and rep.relaxed == 9
    assert [(g["unit"], g["attempts"]) for g in rep.given_up] == [(2, 2)]
    (f,) = store.manifest.failures("relax", "t0")
    assert f["unit"] == 2 and f["given_up"] is True and "injected failure 2 of 99" in f["error"]


def test_screen_with_a_given_up_shard_finishes_and_reports_it(tmp_path, monkeypatch):
    import json
    import os

    from fault_helpers import crystal_key
    from screen_helpers import TESTS_DIR, write_config

    from dosmatgen.screen.driver import run_screen

    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "c.yaml", run)
    run_screen(cfg, progress=False, stop_after="sample")
    from dosmatgen.runstore import RunStore

    first = RunStore.open(run, mode="r").target("a").read_crystals("sample", 1)[0]
    relax = {"backend": "dask", "loader": "fault_helpers:load_flaky_relaxer",
             "options": {"fail": {crystal_key(first): 99}, "counter_dir": str(tmp_path / "c")},
             "filter": {"require_converged": False, "min_distance": 1.0},
             "dask": {"cluster": "local", "n_workers": 1, "max_shard_attempts": 2}}
    cfg = write_config(tmp_path / "c.yaml", run, relax=relax)
    out = run_screen(cfg, resume=True, progress=False)
    assert [(g["unit"], g["attempts"]) for g in out["stages"]["relax"]["given_up"]] == [(1, 2)]
    summary = json.loads((run / "summary" / "summary.json").read_text())
    (failed,) = summary["failed_shards"]
    assert (failed["target"], failed["shard"], failed["stage"], failed["attempts"]) == ("a", 1, "relax", 2)
    assert "injected failure 2 of 99" in failed["error"]
    assert summary["counts"]["a"]["selected"] == 2 and summary["counts"]["a"]["dft_done"] == 2
