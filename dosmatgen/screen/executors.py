"""How a screening run's stages are executed: a small interface, the in-process executor, the backend registry.

A stage is plain data (:class:`ShardWork`: the stage, its loader spec and options; :class:`DFTWork`), so every
executor runs the same library work functions of :mod:`dosmatgen.screen.stages`. An executor has one method per
stage kind:

* :meth:`ScreenExecutor.map_shards`: run the (target, shard) units of a sample, relax or rank stage;
* :meth:`ScreenExecutor.run_dft`: run (or submit) the pending DFT slots.

An executor may also have ``prepare(store, work)`` and ``close()``: the driver calls ``prepare`` when the run starts,
for a later stage it will reach, so that the executor's start-up overlaps the stages before (Dask starts its workers
and builds their relaxers while sampling runs), and ``close`` when the run ends.

``inline`` (:class:`InlineExecutor`, this module) runs in the driver process. ``ray``, ``dask`` and ``submitit``
live in the orchestration package and are found by name through :mod:`dosmatgen.plugins` (the library never
imports them). A factory takes the stage's backend options (``sample.ray``, ``relax.dask``, ...).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

from dosmatgen import plugins
from dosmatgen.dotted import resolve_callable
from dosmatgen.runstore import RunStore
from dosmatgen.screen.pending import Unit, pending_units
from dosmatgen.screen.stages import FilterConfig, dft_slot, rank_shard, relax_shard, sample_shard

log = logging.getLogger(__name__)

ShardStage = Literal["sample", "relax", "rank"]


@dataclass(frozen=True)
class ShardWork:
    """One shard stage as picklable data. ``filters`` (relax only): relax.filter per target id."""

    stage: ShardStage
    loader: str
    options: Mapping[str, Any] = field(default_factory=dict)
    filters: Mapping[str, FilterConfig] | None = None

    def build(self, device: str = "cpu") -> Any:
        """The stage's callable (sampler, relaxer or scorer), to build ONCE per process."""
        make = resolve_callable(self.loader)
        return make(**self.options, device=device) if self.stage == "sample" else make(**self.options)

    def run(self, store: RunStore, target_id: str, shard: int, worker: Any) -> dict[str, int]:
        """Run one unit with a built ``worker``; counts (zeros for a unit that is already done)."""
        if self.stage == "sample":
            return {"candidates": sample_shard(store, target_id, shard, worker)}
        if self.stage == "relax":
            if self.filters is None:
                raise ValueError("the relax stage needs filters")
            return relax_shard(store, target_id, shard, worker, self.filters)
        return {"scored": rank_shard(store, target_id, shard, worker)}


@dataclass(frozen=True)
class DFTWork:
    """The DFT stage: the engine loader (``engine.compute_dos``), its options and the attempts per slot."""

    loader: str
    options: Mapping[str, Any] = field(default_factory=dict)
    max_attempts: int = 2


class ScreenExecutor(Protocol):
    def map_shards(self, store: RunStore, work: ShardWork, units: Sequence[Unit], *, progress: bool) -> dict[str, Any]:
        """Run every unit; a report with ``shards`` and the summed counts of :meth:`ShardWork.run`."""
        ...

    def run_dft(self, store: RunStore, work: DFTWork, *, wait: bool | None, progress: bool) -> dict[str, Any]:
        """Run or submit the pending DFT slots; a report with ``completed``, ``given_up`` and
        ``waiting_on_scheduler`` (True when submitted jobs are left to a scheduler)."""
        ...


#: a factory takes the stage's backend options
ExecutorFactory = Callable[[dict[str, Any]], ScreenExecutor]


class InlineExecutor:
    """Runs every unit in the driver process (laptops, CI, debugging). Option ``device`` (sample): cpu, cuda."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def map_shards(self, store: RunStore, work: ShardWork, units: Sequence[Unit], *, progress: bool) -> dict[str, Any]:
        from tqdm import tqdm

        t0 = time.perf_counter()
        worker = work.build(device=self.options.get("device", "cpu"))
        totals: dict[str, int] = {}
        for tid, shard in tqdm(units, desc=work.stage, unit="shard", disable=not progress):
            for k, v in work.run(store, tid, shard, worker).items():
                totals[k] = totals.get(k, 0) + v
        return {"shards": len(units), **totals, "seconds": time.perf_counter() - t0}

    def run_dft(self, store: RunStore, work: DFTWork, *, wait: bool | None, progress: bool) -> dict[str, Any]:
        from tqdm import tqdm

        engine = None
        done = 0
        for _ in range(work.max_attempts):
            units, _given_up = pending_units(store, work.max_attempts)
            if not units:
                break
            engine = engine or resolve_callable(work.loader)(**work.options)
            for tid, k in tqdm(units, desc="dft", unit="job", disable=not progress):
                try:
                    dft_slot(store, tid, k, engine, store.root / "dft_work" / tid / str(k))
                    done += 1
                except Exception as exc:  # recorded in the manifest by dft_slot; retried in the next round
                    log.warning("DFT %s/%d failed: %s", tid, k, exc)
        return {"completed": done, "given_up": len(pending_units(store, work.max_attempts)[1]),
                "waiting_on_scheduler": False}


plugins.register(plugins.SCREEN_EXECUTOR, "inline", InlineExecutor)


def make_executor(backend: str, options: Mapping[str, Any] | None = None) -> ScreenExecutor:
    """The executor registered as ``backend``, built with the stage's backend options (building one imports its
    framework and starts nothing: PluginUnavailable when the framework is not installed)."""
    factory = plugins.lookup(plugins.SCREEN_EXECUTOR, backend)
    try:
        return factory(dict(options or {}))
    except ImportError as exc:
        raise plugins.PluginUnavailable(f"the {backend!r} {plugins.SCREEN_EXECUTOR} needs the cluster extra "
                                        f"(pip install 'dosmatgen[cluster]'): {exc}") from None
