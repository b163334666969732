"""DaskExecutor.prepare: the relax cluster starts, and every worker builds its relaxer, before the relax stage; the
stage then builds nothing again, an error in starting surfaces in the stage, and the cluster is shut down after it.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_dask_prestart.py
"""

from __future__ import annotations

import os
import time

import pytest
from screen_helpers import small_store

pytest.importorskip("distributed")
from dosmatgen.screen.baseline import load_emt_relaxer, load_random_sampler  # noqa: E402
from dosmatgen.screen.executors import ShardWork  # noqa: E402
from dosmatgen.screen.stages import FilterConfig, sample_shard  # noqa: E402
from dosmatgen_cluster.executors import DaskExecutor  # noqa: E402

pytestmark = pytest.mark.cluster

LOADER = "test_cluster_dask_prestart:load_recording_relaxer"


def load_recording_relaxer(log_dir: str, fail: bool = False, fmax: float = 0.2, steps: int = 6):
    """EMT relaxer that leaves a file per construction (pid, time); ``fail`` makes the construction raise."""
    with open(os.path.join(log_dir, f"built-{os.getpid()}-{time.time_ns()}"), "w"):
        pass
    if fail:
        raise RuntimeError("cannot load the force field (test)")
    return load_emt_relaxer(fmax, steps)


def _sampled(tmp_path, n=12, shard_size=3):
    store = small_store(tmp_path / "run", n=n, shard_size=shard_size)
    sampler = load_random_sampler(["Al", "Cu", "Ni"], 14.0, 1.5)
    for s in range(n // shard_size):
        sample_shard(store, "t0", s, sampler)
    return store, [("t0", s) for s in range(n // shard_size)]


def _work(log_dir, **options):
    return ShardWork("relax", LOADER, {"log_dir": str(log_dir), **options},
                     {"t0": FilterConfig(require_converged=False, min_distance=1.0)})


def test_workers_are_warm_before_the_stage_and_build_nothing_again(tmp_path):
    store, units = _sampled(tmp_path)
    built = tmp_path / "built"
    built.mkdir()
    executor = DaskExecutor({"cluster": "local", "n_workers": 2, "threads_per_worker": 1, "prestart": True})
    work = _work(built)
    executor.prepare(store, work)
    executor._warm.client(timeout=300)  # the cluster is up and both relaxers are built, no shard relaxed yet
    before = sorted(p.name for p in built.iterdir())
    assert len(before) == 2 and len({name.split("-")[1] for name in before}) == 2  # one per worker process
    assert store.target("t0").pending("relax") == [0, 1, 2, 3]
    report = executor.map_shards(store, work, units, progress=False)
    assert (report["shards"], report["relaxed"]) == (4, 12)
    assert sorted(p.name for p in built.iterdir()) == before  # the stage reused the warm relaxers
    assert executor._warm is None  # the cluster was shut down after the stage


def test_an_error_in_starting_is_raised_by_the_relax_stage(tmp_path):
    store, units = _sampled(tmp_path)
    built = tmp_path / "built"
    built.mkdir()
    executor = DaskExecutor({"cluster": "local", "n_workers": 1, "threads_per_worker": 1, "prestart": True})
    work = _work(built, fail=True)
    executor.prepare(store, work)
    with pytest.raises(RuntimeError, match="cannot load the force field"):
        executor.map_shards(store, work, units, progress=False)
    assert executor._warm is None and store.target("t0").pending("relax") == [0, 1, 2, 3]


@pytest.mark.parametrize("options", [{}, {"prestart": False}])
def test_without_prestart_nothing_starts_ahead(tmp_path, options):
    store, _ = _sampled(tmp_path)
    executor = DaskExecutor({"cluster": "local", "n_workers": 1, **options})
    executor.prepare(store, _work(tmp_path))
    assert executor._warm is None
    executor.close()  # nothing to close


def test_the_nersc_config_prestarts():
    from pathlib import Path

    import yaml

    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / "screen" / "nersc.yaml").read_text())
    assert raw["relax"]["dask"]["prestart"] is True
