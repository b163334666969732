"""The cluster executors of a screening run (:class:`dosmatgen.screen.executors.ScreenExecutor`), found by the
library by name (``backend:`` in the screen config; :data:`dosmatgen.plugins.PROVIDERS`):

* ``ray`` (:class:`RayExecutor`): the sample stage on Ray actors (:mod:`dosmatgen_cluster.ray_sampling`);
* ``dask`` (:class:`DaskExecutor`): the relax stage on Dask (:mod:`dosmatgen_cluster.dask_relax`);
* ``submitit`` (:class:`SubmititExecutor`): the DFT stage as a submitit job array (:mod:`dosmatgen_cluster.submitit_dft`).

Building an executor imports its framework (so a missing one fails at ``dosmatgen screen --check``) and starts
nothing; the cluster is joined or started when the stage runs, or, for Dask, earlier by :meth:`DaskExecutor.prepare`
(the driver calls it when the run starts, so the relax workers start while sampling runs).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

from dosmatgen.errors import InvalidRecordError
from dosmatgen.runstore import RunStore
from dosmatgen.screen.executors import DFTWork, ShardWork
from dosmatgen.screen.pending import Unit


class _OneStage:
    """An executor that runs one stage kind; the other raises naming the backend."""

    backend = ""
    stage = ""  # the one stage it runs: sample, relax or dft

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def _only(self, stage: str) -> None:
        if stage != self.stage:
            raise InvalidRecordError(f"backend {self.backend!r} cannot run the {stage} stage")

    def map_shards(self, store: RunStore, work: ShardWork, units: Sequence[Unit], *, progress: bool) -> dict[str, Any]:
        self._only(work.stage)
        return self._map(store, work, list(units), progress)

    def run_dft(self, store: RunStore, work: DFTWork, *, wait: bool | None, progress: bool) -> dict[str, Any]:
        self._only("dft")
        return self._dft(store, work, wait, progress)

    def _map(self, store: RunStore, work: ShardWork, units: list[Unit], progress: bool) -> dict[str, Any]:
        raise NotImplementedError

    def _dft(self, store: RunStore, work: DFTWork, wait: bool | None, progress: bool) -> dict[str, Any]:
        raise NotImplementedError


class RayExecutor(_OneStage):
    """Options (``sample.ray``): address, num_cpus, num_gpus, num_actors, use_gpu, threads_per_actor, timeout_s,
    max_shard_attempts, expected_nodes, expected_gpus, ready_timeout_s."""

    backend, stage = "ray", "sample"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        from dosmatgen_cluster import ray_sampling

        self.ray_sampling = ray_sampling

    def _map(self, store: RunStore, work: ShardWork, units: list[Unit], progress: bool) -> dict[str, Any]:
        opts = self.options
        self.ray_sampling.connect(opts.get("address"), opts.get("num_cpus"), opts.get("num_gpus"))
        rep = self.ray_sampling.run_sampling(
            store.root, units, work.loader, dict(work.options),
            num_actors=opts.get("num_actors"), use_gpu=opts.get("use_gpu"),
            threads_per_actor=int(opts.get("threads_per_actor", 1)),
            timeout_s=float(opts.get("timeout_s", 3600)), progress=progress,
            max_shard_attempts=int(opts.get("max_shard_attempts", 3)), expected_nodes=opts.get("expected_nodes"),
            expected_gpus=opts.get("expected_gpus"), ready_timeout_s=float(opts.get("ready_timeout_s", 600)),
        )
        return {"shards": rep.shards, "candidates": rep.candidates, "actor_restarts": rep.actor_restarts, "seconds": rep.seconds,
                "given_up": rep.given_up}


class DaskExecutor(_OneStage):
    """Options (``relax.dask``): see :func:`dosmatgen_cluster.dask_relax.dask_client`, plus ``timeout_s``,
    ``max_shard_attempts``, ``reuse_freed_memory`` (default true: :mod:`dosmatgen_cluster.worker_malloc`) and
    ``prestart`` (default false; true: :meth:`prepare` starts the cluster and builds the workers' relaxers while the
    stages before relax run, for a cluster whose CPUs or GPUs are otherwise idle then, e.g. ``configs/screen/nersc.yaml``)."""

    backend, stage = "dask", "relax"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        import distributed  # noqa: F401  (fail here, at --check, when Dask is missing)

        for key in ("reuse_freed_memory", "prestart"):
            if key in self.options and not isinstance(self.options[key], bool):
                raise InvalidRecordError(f"relax.dask.{key}: must be true or false, got {self.options[key]!r}")
        self._warm: Any = None  # a WarmCluster after prepare()

    def _split(self) -> tuple[dict[str, Any], float, int, bool]:
        """(the cluster options of dask_client, timeout_s, max_shard_attempts, reuse_freed_memory)."""
        opts = dict(self.options)
        timeout = float(opts.pop("timeout_s", 3600))
        attempts = int(opts.pop("max_shard_attempts", 3))
        reuse = opts.pop("reuse_freed_memory", True)
        opts.pop("prestart", None)
        return opts, timeout, attempts, reuse

    def prepare(self, store: RunStore, work: ShardWork) -> None:
        """Start the cluster and build the relaxer on each worker in a background thread
        (:class:`dosmatgen_cluster.dask_relax.WarmCluster`), so that this start-up (worker processes, torch and
        force-field imports, weights) overlaps the stages before relax. The relax stage then uses that cluster; an
        error in starting it is raised by the relax stage. Without ``prestart: true`` nothing happens here and the
        cluster starts with the relax stage. Call :meth:`close` if the relax stage may not run."""
        if not self.options.get("prestart", False) or self._warm is not None:
            return
        from dosmatgen_cluster.dask_relax import WarmCluster

        opts, _, _, reuse = self._split()
        self._warm = WarmCluster(opts, store.root, work.loader, dict(work.options), reuse)

    def close(self) -> None:
        """Shut down a cluster that :meth:`prepare` started (after its start has finished)."""
        warm, self._warm = self._warm, None
        if warm is not None:
            warm.close()

    def _map(self, store: RunStore, work: ShardWork, units: list[Unit], progress: bool) -> dict[str, Any]:
        from dosmatgen_cluster.dask_relax import dask_client, run_relax

        opts, timeout, attempts, reuse = self._split()
        with contextlib.ExitStack() as stack:
            if self._warm is not None:
                stack.callback(self.close)
                client = self._warm.client()  # raises what starting the cluster raised
            else:
                client = stack.enter_context(dask_client(opts))
            rep = run_relax(client, store.root, units, work.loader, dict(work.options), work.filters,
                            timeout_s=timeout, max_shard_attempts=attempts, progress=progress, reuse_freed_memory=reuse)
        return {"shards": rep.shards, "relaxed": rep.relaxed, "passed": rep.passed, "failed": rep.failed, "seconds": rep.seconds,
                "given_up": rep.given_up}


class SubmititExecutor(_OneStage):
    """Options (``dft.submitit``): see :mod:`dosmatgen_cluster.submitit_dft`, plus ``wait_timeout_s``."""

    backend, stage = "submitit", "dft"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        from dosmatgen_cluster import submitit_dft

        self.submitit_dft = submitit_dft

    def _dft(self, store: RunStore, work: DFTWork, wait: bool | None, progress: bool) -> dict[str, Any]:
        opts = dict(self.options)
        timeout = float(opts.pop("wait_timeout_s", 24 * 3600))
        rep = self.submitit_dft.run_dft_stage(store, work.loader, dict(work.options), opts, max_attempts=work.max_attempts,
                                              timeout_s=timeout, wait=wait, progress=progress)
        return {"submitted": rep.submitted, "completed": rep.completed, "given_up": len(rep.failed),
                "waiting_on_scheduler": rep.waiting_on_scheduler, "job_ids": rep.job_ids}
