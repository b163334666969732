"""Sampling stage on Ray: one actor per GPU (``num_gpus=1``), or CPU actors when the cluster has no GPUs.

Each actor builds its sampler ONCE (the loader named in the config loads the checkpoint) and then runs whole
run-store shards handed out by the driver from a work queue (:func:`dosmatgen.screen.stages.sample_shard`).
A shard's seed depends only on (run seed, target, shard), so a CPU run gives the same candidates whatever the
number of actors; on GPUs nondeterministic kernels can change the last bits.

Fault tolerance: when an actor dies, its in-flight shard is put back on the queue and a replacement actor is
started; since a shard is marked complete only after all its rows are written, the run still ends with exactly
N candidates and no duplicates. The run store, not the actor's reply, says whether a shard is complete: an actor
can die (or its task fail) after its shard is marked done but before the driver has the reply, and a requeued
attempt of a shard that is already done writes nothing and returns 0; in both cases the driver reads the
shard's count back from the manifest, so each shard is counted exactly once and never retried or given up
once it is done. Every ``ray.wait``/``ray.get`` has a timeout (an actor asking for a GPU that
does not exist would otherwise wait forever).

Progress counters are exported with ``ray.util.metrics`` (:mod:`dosmatgen_cluster.progress_metrics`:
``dosmatgen_candidates_sampled`` from the actors, ``dosmatgen_sample_shards_failed`` from the driver) and actors
are named ``dosmatgen-sampler-<i>``.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import ray

from dosmatgen_cluster.progress_metrics import SAMPLE_SHARDS_FAILED, SAMPLED, ProgressCounters

log = logging.getLogger(__name__)

SAMPLED_METRIC = SAMPLED  # kept for callers of the old name


@dataclass
class SamplingReport:
    shards: int
    candidates: int
    actor_restarts: int
    seconds: float
    given_up: list[dict[str, Any]] = field(default_factory=list)  # shards that failed max_shard_attempts times


class SamplingActor:
    """Holds one loaded sampler; runs whole shards. Created through :func:`make_actor_class`."""

    def __init__(self, loader: str, options: dict[str, Any], threads: int = 1) -> None:
        import torch

        from dosmatgen.screen.stages import resolve_callable

        torch.set_num_threads(max(1, int(threads)))
        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.device = "cuda" if self.gpu_ids and torch.cuda.is_available() else "cpu"
        self.stores: dict[str, Any] = {}
        t0 = time.perf_counter()
        self.sampler = resolve_callable(loader)(**options, device=self.device)
        self.load_seconds = time.perf_counter() - t0
        self.loads = 1
        from dosmatgen_cluster.progress_metrics import ProgressCounters

        self.counters = ProgressCounters()

    def info(self) -> dict[str, Any]:
        return {
            "gpu_ids": self.gpu_ids,
            "device": self.device,
            "pid": os.getpid(),
            "loads": self.loads,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "load_seconds": self.load_seconds,
        }

    def run(self, store_root: str, target_id: str, shard: int) -> tuple[str, int, int]:
        from dosmatgen.runstore import RunStore
        from dosmatgen.screen.stages import sample_shard

        if store_root not in self.stores:
            self.stores[store_root] = RunStore.open(store_root, mode="r+")
        n = sample_shard(self.stores[store_root], target_id, shard, self.sampler)
        if n:
            self.counters.inc(SAMPLED, n, target=target_id)
        return target_id, shard, n


def make_actor_class(use_gpu: bool):
    """The Ray actor class pinned to one GPU (``num_gpus=1``) or to one CPU."""
    if use_gpu:
        return ray.remote(num_gpus=1, num_cpus=1, max_restarts=0)(SamplingActor)
    return ray.remote(num_cpus=1, max_restarts=0)(SamplingActor)


def cluster_gpus() -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def make_actors(loader: str, options: dict[str, Any] | None, num_actors: int, use_gpu: bool,
                threads_per_actor: int = 1, name_prefix: str = "dosmatgen-sampler", first_index: int = 0) -> list[Any]:
    """Start ``num_actors`` named sampling actors (each loads the sampler once, in its constructor)."""
    actor_cls = make_actor_class(use_gpu)
    return [actor_cls.options(name=f"{name_prefix}-{first_index + i}").remote(loader, dict(options or {}), threads_per_actor)
            for i in range(num_actors)]


def run_sampling(
    store_root: str | Path,
    units: Iterable[tuple[str, int]],
    loader: str,
    options: dict[str, Any] | None = None,
    *,
    num_actors: int | None = None,
    use_gpu: bool | None = None,
    threads_per_actor: int = 1,
    timeout_s: float = 3600.0,
    max_actor_restarts: int = 4,
    max_shard_attempts: int = 3,
    expected_nodes: int | str | None = None,
    expected_gpus: int | str | None = None,
    ready_timeout_s: float = 600.0,
    progress: bool = True,
    actors: list[Any] | None = None,
) -> SamplingReport:
    """Sample every (target, shard) unit with a pool of actors; returns when all units are done or given up.

    ``expected_nodes``/``expected_gpus``: first wait (``ready_timeout_s``) until that many Ray nodes/GPUs have
    joined (:func:`dosmatgen_cluster.readiness.wait_for_ray`), so the pool is sized on the whole allocation.
    ``use_gpu=None`` uses GPUs when the Ray cluster has any. ``num_actors=None`` means one per GPU, or
    ``int(cluster CPUs)`` on CPU. ``actors``: an existing pool from :func:`make_actors` (reused, not killed at
    the end); otherwise a pool is started and killed at the end.

    A shard whose task raises, or whose actor dies, is retried up to ``max_shard_attempts`` times in all
    (:mod:`dosmatgen_cluster.shard_retry`), then given up (recorded with its reason; ``report.given_up``). A dead actor is
    replaced. Every actor (first pool and replacements) gets work only once its constructor has finished, so an
    actor that cannot start (its node is gone, or it asks for a GPU that is not there) never holds a shard while
    live actors idle. ``timeout_s`` bounds the wait for any
    single shard or actor start. Raises TimeoutError when nothing finishes within ``timeout_s`` and RuntimeError
    when more than ``max_actor_restarts`` actors die.
    """
    from tqdm import tqdm

    from dosmatgen_cluster.readiness import expected_count, wait_for_ray
    from dosmatgen_cluster.shard_retry import ShardRetries, short_reason
    from dosmatgen.runstore import RunStore

    if not ray.is_initialized():
        raise RuntimeError("ray is not initialized: call dosmatgen_cluster.ray_sampling.connect() or ray.init() first")
    queue = collections.deque(units)
    total = len(queue)
    t0 = time.perf_counter()
    if total == 0:
        return SamplingReport(0, 0, 0, 0.0)
    n_nodes, n_gpus = expected_count(expected_nodes, "expected_nodes"), expected_count(expected_gpus, "expected_gpus")
    if n_nodes or n_gpus:
        cap = wait_for_ray(n_nodes, n_gpus, timeout_s=ready_timeout_s)
        log.info("Ray cluster ready: %s", cap)
    gpus = cluster_gpus()
    use_gpu = gpus > 0 if use_gpu is None else use_gpu
    owned = actors is None
    if actors is None:
        if num_actors is None:
            num_actors = gpus if use_gpu else max(1, int(ray.cluster_resources().get("CPU", 1)))
        num_actors = max(1, min(int(num_actors), total))
        actors = make_actors(loader, options, num_actors, use_gpu, threads_per_actor)
    spawned = len(actors)
    root = str(store_root)
    store = RunStore.open(root, mode="r+")
    retries = ShardRetries(store, "sample", max_shard_attempts)
    # shards already done before this run: they add no candidates to its report
    done_before = {tid: store.manifest.done_units("sample", tid) for tid in {u[0] for u in queue}}
    # an actor gets work only once its constructor has finished: one that cannot be placed (its node is gone,
    # or it asks for a GPU nobody has) must not hold a shard while others could run it
    idle: list[Any] = []
    inflight: dict[Any, tuple[Any, tuple[str, int]]] = {}
    starting: dict[Any, Any] = {a.info.remote(): a for a in actors}  # ready probe -> actor still starting
    replacements: list[Any] = []
    restarts = 0
    written = 0
    bar = tqdm(total=total, desc="sample", unit="shard", disable=not progress)
    counters = ProgressCounters()

    def committed(unit: tuple[str, int]) -> int | None:
        """Candidates that this run wrote for ``unit``, read from the run store; None while it is not done.

        The manifest is the record of a completed shard: an attempt whose reply was lost (its actor died, or the
        task failed, after ``mark_done``) has still done the shard, and a later attempt then finds it done and
        returns 0."""
        tid, shard = unit
        if str(shard) in done_before.get(tid, ()):
            return 0
        if not store.manifest.is_done("sample", tid, shard):
            return None
        return int(store.manifest.done_info("sample", tid, shard).get("n", 0))

    def counted_as_done(unit: tuple[str, int], what: str, exc: BaseException) -> bool:
        """True (and the shard counted once) when ``unit`` is complete in the run store although its attempt ended in
        ``exc``: the actor died or the task raised after ``mark_done``."""
        nonlocal written
        done_n = committed(unit)
        if done_n is None:
            return False
        log.warning("%s after completing %s (%s)", what, unit, short_reason(exc))
        written += done_n
        bar.update(1)
        return True

    def replace(dead: Any, cause: BaseException) -> None:
        nonlocal restarts, spawned
        restarts += 1
        try:
            ray.kill(dead)
        except Exception:  # already dead
            pass
        if restarts > max_actor_restarts:
            raise RuntimeError(f"{restarts} sampling actors died (max_actor_restarts={max_actor_restarts}); giving up") from cause
        new = make_actors(loader, options, 1, use_gpu, threads_per_actor, first_index=spawned)[0]
        spawned += 1
        replacements.append(new)
        starting[new.info.remote()] = new

    try:
        while queue or inflight:
            while queue and idle:
                actor = idle.pop()
                unit = queue.popleft()
                inflight[actor.run.remote(root, *unit)] = (actor, unit)
            ready, _ = ray.wait(list(inflight) + list(starting), num_returns=1, timeout=timeout_s)
            if not ready:
                raise TimeoutError(
                    f"no sampling shard finished within {timeout_s:.0f} s ({len(inflight)} in flight, "
                    f"{len(starting)} replacement actor(s) starting); an actor may be waiting for a GPU that does not exist"
                )
            for ref in ready:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        ray.get(ref, timeout=timeout_s)
                    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                        replace(actor, exc)
                        continue
                    idle.append(actor)
                    continue
                actor, unit = inflight.pop(ref)
                try:
                    _, _, n = ray.get(ref, timeout=timeout_s)
                except (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError) as exc:
                    if counted_as_done(unit, "sampling actor died", exc):  # the shard is done, not failed
                        replace(actor, exc)
                        continue
                    counters.inc(SAMPLE_SHARDS_FAILED, 1, target=unit[0])
                    log.warning("sampling actor died on %s (%s)", unit, exc)
                    if retries.failed(unit, f"sampling actor died: {short_reason(exc)}"):
                        queue.appendleft(unit)
                    else:
                        bar.update(1)
                    replace(actor, exc)
                    continue
                except ray.exceptions.RayTaskError as exc:  # the shard raised; the actor is alive
                    if counted_as_done(unit, "sampling task raised", exc):
                        idle.append(actor)
                        continue
                    counters.inc(SAMPLE_SHARDS_FAILED, 1, target=unit[0])
                    if retries.failed(unit, short_reason(exc)):
                        queue.append(unit)  # behind the other shards: a transient error gets time to pass
                    else:
                        bar.update(1)
                    idle.append(actor)
                    continue
                if not n:  # found done: an earlier attempt of this run whose reply was lost may have written it
                    n = committed(unit) or 0
                written += n
                bar.update(1)
                idle.append(actor)
    finally:
        bar.close()
        busy = [a for a, _ in inflight.values()]
        ours = set(replacements)
        to_kill = (idle + busy + list(starting.values())) if owned else \
            busy + [a for a in list(idle) + list(starting.values()) if a in ours]
        for a in to_kill:
            try:
                ray.kill(a)
            except Exception:
                pass
    return SamplingReport(total, written, restarts, time.perf_counter() - t0, retries.given_up)


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join a running Ray cluster (``address`` or ``RAY_ADDRESS``), else start a local one.

    A local cluster binds its dashboard to 127.0.0.1 only (reach it through an SSH tunnel, never 0.0.0.0).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, dashboard_host="127.0.0.1", include_dashboard=False)
