"""Ray sampling actors: GPU pinning with fake GPUs, shard queue, actor death, metrics, reproducibility.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_ray_sampling.py
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.request

import pytest
from screen_helpers import TESTS_DIR, small_store

ray = pytest.importorskip("ray")
from dosmatgen_cluster import ray_sampling  # noqa: E402

pytestmark = pytest.mark.cluster
METRICS_PORT = 18765


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    os.environ["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, _metrics_export_port=METRICS_PORT,
             _system_config={"metrics_report_interval_ms": 500}, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _units(store):
    return [(t.id, s) for t in store.targets() for s in t.pending("sample")]


def test_each_gpu_actor_sees_exactly_one_gpu(tmp_path):
    store = small_store(tmp_path, n=4)
    actors = ray_sampling.make_actors("screen_helpers:load_slow_sampler", {"delay_s": 0}, 2, use_gpu=True, name_prefix="gpu-test")
    try:
        infos = ray.get([a.info.remote() for a in actors], timeout=120)
        rep = ray_sampling.run_sampling(store.root, _units(store), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                                        actors=actors, timeout_s=120, progress=False)
        assert rep.candidates == 4 and ray.get(actors[0].info.remote(), timeout=60)["loads"] == 1  # pool reused
    finally:
        for a in actors:
            ray.kill(a)
    ids = [i["gpu_ids"] for i in infos]
    assert all(len(g) == 1 for g in ids) and {g[0] for g in ids} == {"0", "1"}
    assert sorted(i["cuda_visible_devices"] for i in infos) == ["0", "1"]
    assert all(i["loads"] == 1 and i["device"] == "cpu" for i in infos)  # fake GPUs: torch sees no CUDA


def test_two_cpu_actors_sample_every_shard_once_and_match_one_actor(tmp_path):
    two = small_store(tmp_path / "two", n=24, shard_size=4)
    rep = ray_sampling.run_sampling(two.root, _units(two), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                                    num_actors=2, use_gpu=False, timeout_s=120, progress=False)
    assert (rep.shards, rep.candidates, rep.actor_restarts) == (6, 24, 0)
    one = small_store(tmp_path / "one", n=24, shard_size=4)
    ray_sampling.run_sampling(one.root, _units(one), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                              num_actors=1, use_gpu=False, timeout_s=120, progress=False)
    a, b = one.target("t0").read_crystals(), two.target("t0").read_crystals()
    assert len(a) == 24 and all(x.equals(y) for x, y in zip(a, b))
    hosts = {two.manifest.done_info("sample", "t0", s)["host"] for s in range(6)}
    assert len(hosts) == 1


def test_killed_actor_mid_run_still_gives_exactly_n_unique_candidates(tmp_path):
    store = small_store(tmp_path, n=40, shard_size=4)
    done_dir = tmp_path / "manifest" / "sample" / "t0"
    killed = {}

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline and len(list(done_dir.glob("*.json"))) < 2:
            time.sleep(0.05)
        actor = ray.get_actor("dosmatgen-sampler-0")
        ray.kill(actor, no_restart=True)
        killed["at"] = len(list(done_dir.glob("*.json")))

    th = threading.Thread(target=killer)
    th.start()
    rep = ray_sampling.run_sampling(store.root, _units(store), "screen_helpers:load_slow_sampler", {"delay_s": 0.4},
                                    num_actors=2, use_gpu=False, timeout_s=120, progress=False)
    th.join(60)
    assert killed and rep.actor_restarts >= 1
    t = store.target("t0")
    assert t.pending("sample") == []
    crystals = t.read_crystals()
    assert len(crystals) == 40 and all(c is not None for c in crystals)
    seeds = t.column("sample/seed")
    assert all((seeds[4 * s : 4 * s + 4] == t.shard_seed(s)).all() for s in range(10))
    assert len({(c.frac_coords.tobytes()) for c in crystals}) == 40


def test_metrics_counter_reads_back_sampled_n(tmp_path):
    store = small_store(tmp_path, n=12, shard_size=4, targets=("metrics-target",))
    ray_sampling.run_sampling(store.root, _units(store), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                              num_actors=2, use_gpu=False, timeout_s=120, progress=False)
    pattern = re.compile(r'^ray_dosmatgen_candidates_sampled(?:_total)?\{([^}]*)\}\s+([0-9.e+]+)$', re.M)
    total, deadline = 0.0, time.time() + 60
    while time.time() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
        total = sum(float(v) for labels, v in pattern.findall(text) if 'target="metrics-target"' in labels)
        if total >= 12:
            break
        time.sleep(0.5)
    assert total == 12


def test_driver_side_relax_counters_reach_the_metrics_endpoint():
    """The relax stage's counters are incremented by the driver (as Dask shards finish): they are exported too."""
    from dosmatgen_cluster.progress_metrics import FAILED, RELAXED, ProgressCounters

    counters = ProgressCounters()
    counters.inc(RELAXED, 7, target="driver-target")
    counters.inc(FAILED, 2, target="driver-target")
    counters.inc(FAILED, 0, target="driver-target")  # nothing to add: no-op
    found: dict[str, float] = {}
    deadline = time.time() + 60
    while time.time() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10).read().decode()
        for name in (RELAXED, FAILED):
            pat = re.compile(rf'^ray_{name}(?:_total)?\{{([^}}]*)\}}\s+([0-9.e+]+)$', re.M)
            vals = [float(v) for labels, v in pat.findall(text) if 'target="driver-target"' in labels]
            if vals:
                found[name] = max(vals)
        if found.get(RELAXED) == 7 and found.get(FAILED) == 2:
            break
        time.sleep(0.5)
    assert found == {RELAXED: 7.0, FAILED: 2.0}


def test_actor_waiting_for_a_missing_gpu_gets_no_shard(tmp_path):
    """Three GPU actors on two GPUs: the third never starts, so it never holds a shard; the two others do them all."""
    store = small_store(tmp_path, n=12, shard_size=4)
    rep = ray_sampling.run_sampling(store.root, _units(store), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                                    num_actors=3, use_gpu=True, timeout_s=60, progress=False)
    assert rep.candidates == 12 and store.target("t0").pending("sample") == []


def test_no_actor_can_start_is_a_timeout(tmp_path):
    """Every GPU is taken: no sampling actor can start, and the driver says so instead of waiting forever."""
    blockers = [ray.remote(num_gpus=1, num_cpus=0)(BlockGPU).remote() for _ in range(2)]
    try:
        ray.get([b.ready.remote() for b in blockers], timeout=120)
        store = small_store(tmp_path, n=4, shard_size=4)
        with pytest.raises(TimeoutError, match="GPU that does not exist"):
            ray_sampling.run_sampling(store.root, _units(store), "screen_helpers:load_slow_sampler", {"delay_s": 0},
                                      num_actors=1, use_gpu=True, timeout_s=10, progress=False)
        assert store.target("t0").pending("sample") == [0]
    finally:
        for b in blockers:
            ray.kill(b)


class BlockGPU:
    def ready(self) -> bool:
        return True


def test_failing_shard_is_retried_then_given_up_and_the_rest_finishes(tmp_path):
    """A task error costs a shard one attempt (it is retried), not the stage; after max_shard_attempts it is
    given up with its reason in the run store, and every other shard is sampled."""
    store = small_store(tmp_path / "run", n=24, shard_size=4)
    t = store.target("t0")
    transient, poisoned = t.shard_seed(1), t.shard_seed(4)
    rep = ray_sampling.run_sampling(store.root, _units(store), "fault_helpers:load_flaky_sampler",
                                    {"fail": {str(transient): 1, str(poisoned): 99}, "counter_dir": str(tmp_path / "c")},
                                    num_actors=2, use_gpu=False, timeout_s=120, max_shard_attempts=3, progress=False)
    assert t.pending("sample") == [4]
    assert rep.candidates == 20 and rep.actor_restarts == 0
    assert [(g["target"], g["unit"], g["attempts"]) for g in rep.given_up] == [("t0", 4, 3)]
    failures = store.manifest.failures("sample", "t0")
    assert len(failures) == 1 and failures[0]["unit"] == 4 and failures[0]["given_up"] is True
    assert "injected failure 3 of 99" in failures[0]["error"]
    assert len(list((tmp_path / "c").glob(f"seed{transient}.*"))) == 1  # one failed attempt, then success


def test_slow_replacement_actor_does_not_hold_the_requeued_shard(tmp_path):
    """When an actor dies, its shard goes back to the live actors; the replacement only gets work once it has
    started. Here the replacement takes 300 s to start: the run must not wait for it."""
    store = small_store(tmp_path / "run", n=24, shard_size=4)
    gate = tmp_path / "gate"
    done_dir = tmp_path / "run" / "manifest" / "sample" / "t0"

    def killer():
        # waits for the first shard to be done; generous, as actors start slowly on a loaded 2-core machine (the gate
        # must not open while the first actors are still starting, or they too wait constructor_sleep_s)
        deadline = time.time() + 180
        while time.time() < deadline and len(list(done_dir.glob("*.json"))) < 1:
            time.sleep(0.05)
        gate.write_text("replacements start slowly")
        ray.kill(ray.get_actor("dosmatgen-sampler-0"), no_restart=True)

    th = threading.Thread(target=killer)
    th.start()
    t0 = time.time()
    rep = ray_sampling.run_sampling(store.root, _units(store), "fault_helpers:load_gated_sampler",
                                    {"gate_file": str(gate), "constructor_sleep_s": 300, "delay_s": 0.5},
                                    num_actors=2, use_gpu=False, timeout_s=120, progress=False)
    th.join(200)
    elapsed = time.time() - t0
    assert rep.actor_restarts == 1 and rep.candidates == 24 and store.target("t0").pending("sample") == []
    assert elapsed < 200, f"the run waited for the slow replacement actor ({elapsed:.0f} s)"


def load_sampler_dying_after_commit(marker: str, die_on_shard: int, delay_s: float = 0.0, device: str = "cpu"):
    """Loader (runs in the actor process): the actor that completes shard ``die_on_shard`` -- rows written and
    marked done -- kills itself before its reply reaches the driver, once (``marker`` says it happened). This is
    the window that ``ray.kill`` lands in when an actor is killed just as it finishes a shard."""
    import signal

    from dosmatgen.screen import stages

    inner = stages.sample_shard
    if not getattr(inner, "_dies_after_commit", False):

        def sample_shard(store, target_id, shard, sampler):
            n = inner(store, target_id, shard, sampler)
            if int(shard) == int(die_on_shard) and n and not os.path.exists(marker):
                with open(marker, "w") as f:
                    f.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return n

        sample_shard._dies_after_commit = True
        stages.sample_shard = sample_shard
    from fault_helpers import load_flaky_sampler

    return load_flaky_sampler({}, os.path.dirname(marker), delay_s)


@pytest.mark.parametrize("max_shard_attempts", [1, 3])
def test_actor_dying_after_its_shard_is_committed_still_counts_the_shard(tmp_path, max_shard_attempts):
    """An actor that dies after its shard is written and marked done, but before the driver has its reply: the
    shard is complete, so it is counted once (not re-sampled into a 0, not given up, no failure record left)."""
    store = small_store(tmp_path / "run", n=24, shard_size=4)
    marker = tmp_path / "died"
    rep = ray_sampling.run_sampling(store.root, _units(store), "test_cluster_ray_sampling:load_sampler_dying_after_commit",
                                    {"marker": str(marker), "die_on_shard": 1, "delay_s": 0.1},
                                    num_actors=2, use_gpu=False, timeout_s=120, max_shard_attempts=max_shard_attempts,
                                    progress=False)
    assert marker.exists() and rep.actor_restarts == 1
    assert store.target("t0").pending("sample") == []
    assert (rep.candidates, rep.given_up) == (24, [])
    assert store.manifest.failures("sample", "t0") == []
