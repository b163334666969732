"""Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes every large allocation a fresh,
page-faulting mmap; the relax worker puts glibc's thresholds back (dosmatgen_cluster.worker_malloc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from dosmatgen_cluster.worker_malloc import keep_freed_memory_for_reuse

    def faults(n=40):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            a = np.ones(1 << 20)  # 8 MiB, freed at the next iteration
            a.sum()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults(2)
    as_dask_starts_it = faults()
    applied = keep_freed_memory_for_reuse()
    faults(2)
    print(json.dumps({"before": as_dask_starts_it, "after": faults(), "applied": applied,
                      "again": keep_freed_memory_for_reuse()}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                    reason="glibc malloc only")
def test_relax_worker_stops_page_faulting_on_every_large_tensor():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}  # Dask's pre-spawn environment
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["applied"] is True and r["again"] is True
    # 40 fresh 8 MiB mmaps fault in hundreds of pages each (2,048 4-KiB pages, fewer with fault-around); reusing
    # the heap faults almost none
    assert r["before"] > 40 * 100, r
    assert r["after"] < r["before"] / 20, r


@pytest.mark.parametrize("reuse", [True, False])
def test_relax_unit_applies_it(monkeypatch, reuse):
    """The Dask task itself calls it, whatever started the worker (LocalCluster, `dask worker` under srun), before it
    relaxes anything; ``reuse_freed_memory=False`` leaves Dask's setting."""
    from dosmatgen.runstore import RunStore
    from dosmatgen.screen import stages
    from dosmatgen_cluster import dask_relax, worker_malloc

    events = []
    monkeypatch.setattr(worker_malloc, "keep_freed_memory_for_reuse", lambda: events.append("malloc") or True)
    monkeypatch.setattr(RunStore, "open", classmethod(lambda cls, root, mode="r": events.append(("open", root, mode)) or "store"))
    monkeypatch.setattr(stages, "relax_shard", lambda store, tid, shard, relaxer, filters: events.append(
        ("relax", store, tid, shard)) or {"relaxed": 3, "passed": 2, "failed": 1})
    monkeypatch.setattr(dask_relax, "_relaxer", lambda loader, options: "relaxer")
    out = dask_relax.relax_unit("/run.zarr", "t", 4, "x:y", {}, None, reuse_freed_memory=reuse)
    assert out == {"target": "t", "shard": 4, "pid": os.getpid(), "relaxed": 3, "passed": 2, "failed": 1}
    assert events == (["malloc"] if reuse else []) + [("open", "/run.zarr", "r+"), ("relax", "store", "t", 4)]


def test_dask_executor_refuses_a_non_boolean_reuse_freed_memory():
    pytest.importorskip("distributed")
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen_cluster.executors import DaskExecutor

    assert DaskExecutor({"reuse_freed_memory": False}).options["reuse_freed_memory"] is False
    with pytest.raises(InvalidRecordError, match="relax.dask.reuse_freed_memory: must be true or false, got 'no'"):
        DaskExecutor({"reuse_freed_memory": "no"})


def test_dask_executor_refuses_a_non_boolean_prestart():
    pytest.importorskip("distributed")
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen_cluster.executors import DaskExecutor

    assert DaskExecutor({"prestart": True}).options["prestart"] is True
    with pytest.raises(InvalidRecordError, match="relax.dask.prestart: must be true or false, got 'yes'"):
        DaskExecutor({"prestart": "yes"})
