"""The screen driver: sample -> relax/filter -> rank -> select top K -> DFT, then a summary.

All stages share one run store (:mod:`dosmatgen.runstore`) under ``run.dir``; each stage asks the manifest
which units are pending, so rerunning the same command after a crash (or ``--resume`` after the DFT array
was submitted to Slurm) continues where the run stopped, with no lost and no duplicated candidates.

Each stage runs on the executor its config names (``backend``; :mod:`dosmatgen.screen.executors`): sample
``inline`` | ``ray``; relax ``inline`` | ``dask``; rank ``inline``; dft ``inline`` | ``submitit``. ``inline`` runs
in the driver process (laptops, debugging, tiny runs); the others come from the orchestration package
(``dosmatgen_cluster``), found by name, so this module imports no scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dosmatgen import plugins
from dosmatgen.dotted import resolve_callable
from dosmatgen.runstore import RunStore
from dosmatgen.screen.config import ScreenConfig, StageConfig, load_screen_config
from dosmatgen.screen.executors import DFTWork, ScreenExecutor, ShardWork, make_executor
from dosmatgen.screen.library_stages import site_dos_predictor
from dosmatgen.screen.pending import pending_shards
from dosmatgen.screen.relax_options import run_relaxer_options
from dosmatgen.screen.stages import select_top_k
from dosmatgen.screen.summary import format_summary, write_summary
from dosmatgen.screen.targets import run_layout, target_plans

log = logging.getLogger(__name__)

SHARD_STAGES = ("sample", "relax", "rank")


def open_run(cfg: ScreenConfig, *, resume: bool) -> RunStore:
    if resume:
        store = RunStore.open(cfg.run_dir, mode="r+")
        store.check_same_plan(run_layout(cfg), target_plans(cfg))
        return store
    return RunStore.create(cfg.run_dir, run_layout(cfg), target_plans(cfg))


def stage_config(cfg: ScreenConfig, stage: str) -> StageConfig:
    return getattr(cfg, stage)


def executors(cfg: ScreenConfig) -> dict[str, ScreenExecutor]:
    """One executor per stage, built from the config (imports the backends' frameworks, starts nothing)."""
    return {name: make_executor(stage_config(cfg, name).backend, stage_config(cfg, name).backend_options)
            for name in (*SHARD_STAGES, "dft")}


def check_screen(config: str | Path, overrides: dict[str, Any] | None = None) -> ScreenConfig:
    """Validate a screen config without running anything: the config itself, every stage loader, and every
    backend (so a missing cluster extra or a mistyped loader fails before a cluster is started)."""
    cfg = load_screen_config(config, overrides)
    for name in (*SHARD_STAGES, "dft"):
        resolve_callable(stage_config(cfg, name).loader)
    executors(cfg)
    return cfg


def shard_work(cfg: ScreenConfig, stage: str, store: RunStore) -> ShardWork:
    s = stage_config(cfg, stage)
    if stage != "relax":
        return ShardWork(stage, s.loader, dict(s.options), None)  # type: ignore[arg-type]
    # the relaxers of every worker share the run's elemental references (computed once per run)
    return ShardWork(stage, s.loader, run_relaxer_options(s.loader, dict(s.options), store.root), cfg.filters_by_target())


#: ``select(store, target_id) -> rows``: writes the selection sent to DFT (once) and returns its rows, best first
Selector = Callable[[RunStore, str], np.ndarray]


def run_shard_stage(cfg: ScreenConfig, store: RunStore, stage: str, executor: ScreenExecutor, progress: bool,
                    select: Selector = select_top_k) -> dict[str, Any]:
    units = pending_shards(store, stage)
    if stage != "rank":
        return executor.map_shards(store, shard_work(cfg, stage, store), units, progress=progress) if units else {"shards": 0}
    report = executor.map_shards(store, shard_work(cfg, stage, store), units, progress=progress) if units else {"shards": 0, "scored": 0}
    report["selected"] = {t.id: int(select(store, t.id).size) for t in store.targets()}
    return report


def record_scheduler_usage(store: RunStore) -> None:
    """On Slurm (``SLURM_JOB_ID`` set), the ``slurm`` run-accounting provider writes the node- and GPU-hours of the
    run's jobs (sacct) into the run folder for the summary. Elsewhere nothing is recorded."""
    if not os.environ.get("SLURM_JOB_ID"):
        return
    try:
        plugins.lookup(plugins.RUN_ACCOUNTING, "slurm")(store.root)
    except plugins.PluginUnavailable as exc:
        log.warning("no Slurm accounting for this run: %s", exc)


def prestart(cfg: ScreenConfig, store: RunStore, run_on: dict[str, ScreenExecutor], stop_after: str | None,
             started: contextlib.ExitStack) -> None:
    """Let the executors of the later shard stages start ahead (an executor with a ``prepare(store, work)`` method,
    e.g. Dask starting its workers and loading the force field while the sample stage runs), for the stages this run
    will reach and that have pending shards; their ``close()`` goes on ``started``."""
    reached = SHARD_STAGES if stop_after is None else SHARD_STAGES[: SHARD_STAGES.index(stop_after) + 1]
    for name in reached[1:]:
        executor = run_on[name]
        if hasattr(executor, "prepare") and pending_shards(store, name):
            started.callback(executor.close)
            executor.prepare(store, shard_work(cfg, name, store))


def run_screen(config: str | Path, *, resume: bool = False, overrides: dict[str, Any] | None = None,
               progress: bool = True, wait_dft: bool | None = None, stop_after: str | None = None,
               select: Selector = select_top_k) -> dict[str, Any]:
    """Run (or continue) a screen. Returns {"stages": per-stage reports, "summary": summary dict, "store": path}.

    ``stop_after`` ("sample", "relax", "rank") ends the run after that stage (the next call continues).
    ``select`` chooses the candidates sent to DFT (default: the ``rank.top_k`` best scores; the discovery loop
    adds exploration picks, :mod:`dosmatgen.loop.selection`).
    """
    cfg = load_screen_config(config, overrides)
    store = open_run(cfg, resume=resume)
    log.info("run store %s: targets %s", store.root, store.target_ids)
    stages: dict[str, Any] = {}
    run_on = executors(cfg)
    with contextlib.ExitStack() as started:
        prestart(cfg, store, run_on, stop_after, started)
        for name in SHARD_STAGES:
            stages[name] = run_shard_stage(cfg, store, name, run_on[name], progress, select)
            log.info("%s: %s", name, stages[name])
            if stop_after == name:
                return {"stages": stages, "summary": None, "store": str(store.root)}
    stages["dft"] = run_on["dft"].run_dft(store, DFTWork(cfg.dft.loader, dict(cfg.dft.options), cfg.dft_max_attempts),
                                          wait=wait_dft, progress=progress)
    record_scheduler_usage(store)
    summary = write_summary(store, predict_site_dos=site_dos_predictor(cfg.rank.loader, dict(cfg.rank.options)))
    summary["dft_waiting_on_scheduler"] = bool(stages["dft"].get("waiting_on_scheduler"))
    print(format_summary(summary))
    if summary["dft_waiting_on_scheduler"]:
        print(f"DFT jobs submitted: collect with `dosmatgen screen {config} --resume` when they finish")
    return {"stages": stages, "summary": summary, "store": str(store.root)}
