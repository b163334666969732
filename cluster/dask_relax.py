"""Relax/filter stage on Dask: one task per run-store shard, each task writing only its own shard.

Clusters (``relax.dask`` section of the screen config, key ``cluster``):

* ``local``: ``LocalCluster(n_workers, threads_per_worker=1, processes=True)`` (a laptop, CI);
* ``slurm_runner``: dask-jobqueue's ``SLURMRunner`` inside the current allocation (scheduler file on
  ``$SCRATCH``); the driver script must be started by ``srun`` on every task, rank 0 runs the scheduler,
  rank 1 the client (this function), the others are workers;
* ``slurm_cluster``: dask-jobqueue's ``SLURMCluster`` submitting CPU-node worker jobs (kwargs from the YAML,
  e.g. ``queue``, ``account``, ``cores``, ``memory``, ``walltime``, ``job_script_prologue``); ``jobs`` workers.
* ``address``: connect to an existing scheduler (``scheduler_address``);
* ``scheduler_file``: connect through a scheduler file written by ``dask scheduler --scheduler-file`` (how
  slurm/screen.sh starts Dask workers inside the GPU allocation with ``srun --overlap``).

Workers build the relaxer ONCE per process (cached by loader spec and options), and restore glibc's malloc
thresholds that Dask's nanny changes (:mod:`dosmatgen_cluster.worker_malloc`: otherwise batched CHGNet relaxation
spends as long in page faults as in the model).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from dosmatgen_cluster.progress_metrics import FAILED, RELAXED, ProgressCounters
from dosmatgen_cluster.readiness import expected_count
from dosmatgen.screen.relax_options import run_relaxer_options

log = logging.getLogger(__name__)

_RELAXERS: dict[str, Any] = {}


def _relaxer(loader: str, options: dict[str, Any]):
    from dosmatgen.screen.stages import resolve_callable

    key = loader + json.dumps(options, sort_keys=True, default=str)
    if key not in _RELAXERS:
        _RELAXERS[key] = resolve_callable(loader)(**options)
    return _RELAXERS[key]


#: where a run keeps its elemental reference energies (shared by every worker, computed once: see
#: dosmatgen.relax.references)
def relax_unit(store_root: str, target_id: str, shard: int, loader: str, options: dict[str, Any], filters,
               reuse_freed_memory: bool = True) -> dict[str, Any]:
    """One Dask task: relax and filter one shard (skipped if the manifest says it is done).

    ``reuse_freed_memory``: restore glibc's malloc thresholds in this worker (:mod:`dosmatgen_cluster.worker_malloc`;
    ``relax.dask.reuse_freed_memory: false`` keeps Dask's, which return memory to the OS sooner at a large cost in
    page faults)."""
    import os

    from dosmatgen.runstore import RunStore
    from dosmatgen.screen.stages import relax_shard
    from dosmatgen_cluster.worker_malloc import keep_freed_memory_for_reuse

    if reuse_freed_memory:
        keep_freed_memory_for_reuse()  # undo the page-fault cost of Dask's MALLOC_TRIM_THRESHOLD_ (see that module)
    store = RunStore.open(store_root, mode="r+")
    counts = relax_shard(store, target_id, shard, _relaxer(loader, options), filters)
    return {"target": target_id, "shard": shard, "pid": os.getpid(), **counts}


def warm_relaxer(loader: str, options: dict[str, Any], reuse_freed_memory: bool = True) -> int:
    """Dask task: build this worker's relaxer now (imports, force-field weights, elemental references cache handle),
    exactly as :func:`relax_unit` would, so that the worker's first shard does not pay for it. Returns the pid."""
    import os

    from dosmatgen_cluster.worker_malloc import keep_freed_memory_for_reuse

    if reuse_freed_memory:
        keep_freed_memory_for_reuse()
    _relaxer(loader, options)
    return os.getpid()


class WarmCluster:
    """A :func:`dask_client` started in a background thread, with the relaxer built on every worker that has joined
    (one :func:`warm_relaxer` task pinned to each), held open until :meth:`close`.

    The client is entered and exited in that thread (Dask's client context cannot be left from another one); other
    threads use it through :meth:`client`, which waits for the start and raises what the start raised (the error the
    relax stage itself would meet: a force field that cannot load, a cluster that cannot start)."""

    def __init__(self, options: dict[str, Any], store_root: str | Path, loader: str, relaxer_options: dict[str, Any] | None,
                 reuse_freed_memory: bool = True) -> None:
        import concurrent.futures
        import threading

        self._ready: concurrent.futures.Future = concurrent.futures.Future()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dask-prestart", daemon=True,
                                        args=(options, store_root, loader, relaxer_options, reuse_freed_memory))
        self._thread.start()

    def _run(self, options, store_root, loader, relaxer_options, reuse_freed_memory) -> None:
        try:
            with dask_client(options) as client:
                opts = run_relaxer_options(loader, relaxer_options, store_root)
                workers = list(client.scheduler_info(n_workers=-1).get("workers", {}))
                futures = [client.submit(warm_relaxer, loader, opts, reuse_freed_memory, workers=[w],
                                         allow_other_workers=False, pure=False, key=f"warm-relaxer-{k}-{time.time_ns()}")
                           for k, w in enumerate(workers)]
                pids = client.gather(futures)
                log.info("relax workers started and warmed ahead of the relax stage: pids %s", pids)
                self._ready.set_result(client)
                self._release.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asks for the client
            if not self._ready.done():
                self._ready.set_exception(exc)
            else:
                log.warning("error while shutting down the relax cluster: %s", exc)

    def client(self, timeout: float | None = None) -> Any:
        """The started client (waits for the start; raises what it raised)."""
        return self._ready.result(timeout)

    def close(self) -> None:
        """Shut the cluster down (after its start has finished)."""
        self._release.set()
        self._thread.join()


@dataclass
class RelaxReport:
    shards: int
    relaxed: int
    passed: int
    failed: int
    worker_pids: set[int]
    seconds: float
    given_up: list[dict[str, Any]] = field(default_factory=list)  # shards that failed max_shard_attempts times


def _scheduler_address(options: dict[str, Any]) -> str:
    if options.get("cluster") == "scheduler_file":
        path = Path(options["scheduler_file"])
        try:
            return str(json.loads(path.read_text())["address"])
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(f"cannot read the Dask scheduler address from {path}: {exc}") from exc
    return str(options["scheduler_address"])


def _remote_security(options: dict[str, Any]):
    """The client's Security for a scheduler started elsewhere: TLS with the run's credentials (``tls_dir``,
    default ``<scheduler file folder>/tls``). A scheduler that does not speak TLS is refused unless the config
    says ``insecure: true``."""
    from dosmatgen_cluster import tls

    address = _scheduler_address(options)
    if not address.startswith("tls://"):
        if options.get("insecure"):
            log.warning("connecting to the Dask scheduler %s WITHOUT TLS (relax.dask.insecure: true)", address)
            return None
        raise RuntimeError(f"the Dask scheduler {address} does not use TLS: start it with `--protocol tls` and the run's "
                           "credentials (slurm/screen.sh does), or set relax.dask.insecure: true for a trusted network")
    folder = options.get("tls_dir")
    if not folder:
        if options.get("cluster") != "scheduler_file":
            raise RuntimeError("relax.dask.tls_dir is required to connect to a tls:// scheduler address")
        folder = Path(options["scheduler_file"]).parent / "tls"
    return tls.security(folder)


def _local_security(options: dict[str, Any]):
    """Security for an in-process LocalCluster: the run's credentials in ``tls_dir`` if given, else a temporary
    certificate held in memory only (per run, never written to disk)."""
    from distributed.security import Security

    from dosmatgen_cluster import tls

    if options.get("insecure"):
        return None
    if options.get("tls_dir"):
        return tls.security(options["tls_dir"])
    return Security.temporary()


def _shared_security(options: dict[str, Any], kind: str):
    """Security for processes on several nodes started here (SLURMRunner ranks, SLURMCluster jobs): the run's
    credential files in ``tls_dir`` (on a shared file system), which every process reads."""
    from dosmatgen_cluster import tls

    if options.get("insecure"):
        return None
    if not options.get("tls_dir"):
        raise RuntimeError(f"relax.dask.cluster {kind} needs tls_dir (credentials on a shared file system, created "
                           "with `python -m dosmatgen_cluster.tls DIR`) or insecure: true")
    return tls.security(options["tls_dir"])


def wait_for_workers(client: Any, n: int, timeout_s: float) -> int:
    """Block until ``n`` Dask workers have joined; TimeoutError naming the expected and found counts."""
    from dask.distributed import TimeoutError as DaskTimeout

    try:
        client.wait_for_workers(int(n), timeout=float(timeout_s))
    except (TimeoutError, DaskTimeout) as exc:
        found = len(client.scheduler_info(n_workers=-1).get("workers", {})) if client.status == "running" else 0
        raise TimeoutError(f"expected {n} Dask workers, found {found} after {timeout_s:.0f} s: are all nodes' "
                           "`dask worker` steps running (see the job's dask-workers.log)?") from exc
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))


@contextlib.contextmanager
def dask_client(options: dict[str, Any]) -> Iterator[Any]:
    """A ``distributed.Client`` for the cluster described by ``options`` (see the module docstring).

    Every connection is TLS (mutual, per-run certificates, :mod:`dosmatgen_cluster.tls`) unless ``insecure: true``.
    ``min_workers``: wait (``wait_timeout_s``) until that many workers have joined.
    """
    from distributed import Client, LocalCluster

    kind = options.get("cluster", "local")
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core", "distributed.worker"):
        logging.getLogger(name).setLevel(options.get("log_level", "WARNING"))
    wait_s = float(options.get("wait_timeout_s", 600))
    if kind == "local":
        sec = _local_security(options)
        with LocalCluster(
            n_workers=int(options.get("n_workers", 2)),
            threads_per_worker=int(options.get("threads_per_worker", 1)),
            processes=True,
            dashboard_address=options.get("dashboard_address", "127.0.0.1:0"),
            host="127.0.0.1",
            protocol="tls://" if sec is not None else "tcp://",
            security=sec,
        ) as cluster, Client(cluster, security=sec) as client:
            yield client
    elif kind in ("address", "scheduler_file"):
        # scheduler_file: a scheduler and workers started by the batch script (slurm/screen.sh) with `srun --overlap`
        sec = _remote_security(options)
        target = {"scheduler_file": options["scheduler_file"]} if kind == "scheduler_file" else {"address": options["scheduler_address"]}
        with Client(**target, security=sec, timeout=options.get("connect_timeout", "300s")) as client:
            if options.get("min_workers"):
                wait_for_workers(client, expected_count(options["min_workers"], "relax.dask.min_workers"), wait_s)
            yield client
    elif kind == "slurm_runner":
        from dask_jobqueue.slurm import SLURMRunner

        scheduler_file = options.get("scheduler_file", "scheduler-{job_id}.json")
        sec = _shared_security(options, kind)
        sched_opts = {} if sec is None else {"security": sec, "protocol": "tls"}
        worker_opts = {} if sec is None else {"security": sec}
        with SLURMRunner(scheduler_file=scheduler_file, scheduler_options=sched_opts, worker_options=worker_opts) as runner, \
                Client(runner, security=sec) as client:
            wait_for_workers(client, runner.n_workers, wait_s)
            yield client
    elif kind == "slurm_cluster":
        from dask_jobqueue import SLURMCluster

        ours = ("cluster", "jobs", "log_level", "min_workers", "wait_timeout_s", "tls_dir", "insecure", "prestart")
        kwargs = {k: v for k, v in options.items() if k not in ours}
        sec = _shared_security(options, kind)
        if sec is not None:
            kwargs["security"] = sec
            kwargs.setdefault("protocol", "tls")
        with SLURMCluster(**kwargs) as cluster, Client(cluster) as client:
            cluster.scale(jobs=int(options.get("jobs", 1)))
            if options.get("min_workers"):
                wait_for_workers(client, expected_count(options["min_workers"], "relax.dask.min_workers"), wait_s)
            yield client
    else:
        raise ValueError(f"relax.dask.cluster must be local, address, scheduler_file, slurm_runner or slurm_cluster, got {kind!r}")


def run_relax(
    client: Any,
    store_root: str | Path,
    units: Iterable[tuple[str, int]],
    loader: str,
    options: dict[str, Any] | None,
    filters,
    *,
    timeout_s: float = 3600.0,
    max_shard_attempts: int = 3,
    progress: bool = True,
    reuse_freed_memory: bool = True,
) -> RelaxReport:
    """Map :func:`relax_unit` over (target, shard) units on ``client``.

    A shard whose task raises (an MLFF exception, CUDA out of memory, a worker lost more often than Dask's own
    ``allowed-failures``) is resubmitted until it has failed ``max_shard_attempts`` times, then given up with its
    reason recorded in the run store (:mod:`dosmatgen_cluster.shard_retry`); the other shards go on. ``timeout_s`` bounds
    the wait for the next shard to finish. ``reuse_freed_memory``: see :func:`relax_unit`.
    """
    from distributed import as_completed
    from tqdm import tqdm

    from dosmatgen_cluster.shard_retry import ShardRetries, short_reason
    from dosmatgen.runstore import RunStore

    units = list(units)
    t0 = time.perf_counter()
    options = run_relaxer_options(loader, options, store_root)
    retries = ShardRetries(RunStore.open(store_root, mode="r+"), "relax", max_shard_attempts)

    def submit(unit: tuple[str, int]):
        tid, shard = unit
        fut = client.submit(relax_unit, str(store_root), tid, shard, loader, dict(options or {}), filters,
                            reuse_freed_memory, key=f"relax-{tid}-{shard}-{time.time_ns()}", pure=False)
        owner[fut.key] = unit
        return fut

    owner: dict[str, tuple[str, int]] = {}
    futures = [submit(u) for u in units]
    totals = {"relaxed": 0, "passed": 0, "failed": 0}
    counters = ProgressCounters()  # shown on the Ray dashboard when the driver is connected to Ray
    pids: set[int] = set()
    with tqdm(total=len(futures), desc="relax", unit="shard", disable=not progress) as bar:
        pending = as_completed(futures, timeout=timeout_s)
        for fut in pending:
            unit = owner.pop(fut.key)
            if fut.status == "error":
                exc = fut.exception(timeout=timeout_s)
                if retries.failed(unit, short_reason(exc)):
                    pending.add(submit(unit))
                else:
                    bar.update(1)
                continue
            res = fut.result(timeout=timeout_s)
            for k in totals:
                totals[k] += res[k]
            counters.inc(RELAXED, res["relaxed"], target=res["target"])
            counters.inc(FAILED, res["failed"], target=res["target"])
            pids.add(res["pid"])
            bar.update(1)
    return RelaxReport(len(units), totals["relaxed"], totals["passed"], totals["failed"], pids,
                       time.perf_counter() - t0, retries.given_up)
