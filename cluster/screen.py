"""The ``dosmatgen screen`` driver: sample -> relax/filter -> rank -> select top K -> DFT, then a summary.

All stages share one run store (:mod:`dosmatgen.runstore`) under ``run.dir``; each stage asks the manifest
which units are pending, so rerunning the same command after a crash (or ``--resume`` after the DFT array
was submitted to Slurm) continues where the run stopped, with no lost and no duplicated candidates.

Backends per stage (config key ``backend``): sample ``inline`` | ``ray``; relax ``inline`` | ``dask``;
rank ``inline``; dft ``inline`` | ``submitit``. ``inline`` runs in the driver process (debugging, tiny runs).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from dosmatgen.errors import DosmatgenError
from dosmatgen.runstore import RunStore
from dosmatgen.screen.config import ScreenConfig, load_screen_config
from dosmatgen.screen.stages import dft_slot, rank_shard, relax_shard, resolve_callable, sample_shard, select_top_k
from dosmatgen.screen.library_stages import site_dos_predictor
from dosmatgen.screen.summary import format_summary, write_summary
from dosmatgen.screen.targets import run_layout, target_plans

log = logging.getLogger(__name__)


def open_run(cfg: ScreenConfig, *, resume: bool) -> RunStore:
    if resume:
        store = RunStore.open(cfg.run_dir, mode="r+")
        store.check_same_plan(run_layout(cfg), target_plans(cfg))
        return store
    return RunStore.create(cfg.run_dir, run_layout(cfg), target_plans(cfg))


def _units(store: RunStore, stage: str) -> list[tuple[str, int]]:
    from dosmatgen.screen.stages import given_up_shards

    return [(t.id, s) for t in store.targets() for s in t.pending(stage) if s not in given_up_shards(store, t.id)]


def stage_sample(cfg: ScreenConfig, store: RunStore, progress: bool) -> dict[str, Any]:
    from tqdm import tqdm

    units = _units(store, "sample")
    opts = cfg.sample.backend_options
    t0 = time.perf_counter()
    if not units:
        return {"shards": 0}
    if cfg.sample.backend == "ray":
        from cluster import ray_sampling

        ray_sampling.connect(opts.get("address"), opts.get("num_cpus"), opts.get("num_gpus"))
        rep = ray_sampling.run_sampling(
            store.root, units, cfg.sample.loader, cfg.sample.options,
            num_actors=opts.get("num_actors"), use_gpu=opts.get("use_gpu"),
            threads_per_actor=int(opts.get("threads_per_actor", 1)),
            timeout_s=float(opts.get("timeout_s", 3600)), progress=progress,
            max_shard_attempts=int(opts.get("max_shard_attempts", 3)), expected_nodes=opts.get("expected_nodes"),
            expected_gpus=opts.get("expected_gpus"), ready_timeout_s=float(opts.get("ready_timeout_s", 600)),
        )
        return {"shards": rep.shards, "candidates": rep.candidates, "actor_restarts": rep.actor_restarts, "seconds": rep.seconds,
                "given_up": rep.given_up}
    sampler = resolve_callable(cfg.sample.loader)(**cfg.sample.options, device=opts.get("device", "cpu"))
    n = 0
    for tid, shard in tqdm(units, desc="sample", unit="shard", disable=not progress):
        n += sample_shard(store, tid, shard, sampler)
    return {"shards": len(units), "candidates": n, "seconds": time.perf_counter() - t0}


def stage_relax(cfg: ScreenConfig, store: RunStore, progress: bool) -> dict[str, Any]:
    from tqdm import tqdm

    units = _units(store, "relax")
    if not units:
        return {"shards": 0}
    t0 = time.perf_counter()
    if cfg.relax.backend == "dask":
        from cluster.dask_relax import dask_client, run_relax

        opts = dict(cfg.relax.backend_options)
        timeout = float(opts.pop("timeout_s", 3600))
        attempts = int(opts.pop("max_shard_attempts", 3))
        with dask_client(opts) as client:
            rep = run_relax(client, store.root, units, cfg.relax.loader, cfg.relax.options, cfg.filters_by_target(),
                            timeout_s=timeout, max_shard_attempts=attempts, progress=progress)
        return {"shards": rep.shards, "relaxed": rep.relaxed, "passed": rep.passed, "failed": rep.failed, "seconds": rep.seconds,
                "given_up": rep.given_up}
    from cluster.dask_relax import run_relaxer_options

    relaxer = resolve_callable(cfg.relax.loader)(**run_relaxer_options(cfg.relax.loader, cfg.relax.options, store.root))
    totals = {"relaxed": 0, "passed": 0, "failed": 0}
    for tid, shard in tqdm(units, desc="relax", unit="shard", disable=not progress):
        for k, v in relax_shard(store, tid, shard, relaxer, cfg.filters_for(tid)).items():
            totals[k] += v
    return {"shards": len(units), **totals, "seconds": time.perf_counter() - t0}


def stage_rank(cfg: ScreenConfig, store: RunStore, progress: bool) -> dict[str, Any]:
    from tqdm import tqdm

    units = _units(store, "rank")
    scored = 0
    if units:
        scorer = resolve_callable(cfg.rank.loader)(**cfg.rank.options)
        for tid, shard in tqdm(units, desc="rank", unit="shard", disable=not progress):
            scored += rank_shard(store, tid, shard, scorer)
    selected = {t.id: int(select_top_k(store, t.id).size) for t in store.targets()}
    return {"shards": len(units), "scored": scored, "selected": selected}


def stage_dft(cfg: ScreenConfig, store: RunStore, progress: bool, wait: bool | None) -> dict[str, Any]:
    from tqdm import tqdm

    if cfg.dft.backend == "submitit":
        from cluster.submitit_dft import run_dft_stage

        opts = dict(cfg.dft.backend_options)
        timeout = float(opts.pop("wait_timeout_s", 24 * 3600))
        rep = run_dft_stage(store, cfg.dft.loader, cfg.dft.options, opts, max_attempts=cfg.dft_max_attempts,
                            timeout_s=timeout, wait=wait, progress=progress)
        return {"submitted": rep.submitted, "completed": rep.completed, "given_up": len(rep.failed),
                "waiting_on_scheduler": rep.waiting_on_scheduler, "job_ids": rep.job_ids}
    from cluster.submitit_dft import pending_units

    engine = None
    done = 0
    for _ in range(cfg.dft_max_attempts):
        units, _given_up = pending_units(store, cfg.dft_max_attempts)
        if not units:
            break
        engine = engine or resolve_callable(cfg.dft.loader)(**cfg.dft.options)
        for tid, k in tqdm(units, desc="dft", unit="job", disable=not progress):
            try:
                dft_slot(store, tid, k, engine, store.root / "dft_work" / tid / str(k))
                done += 1
            except Exception as exc:  # recorded in the manifest by dft_slot; retried in the next round
                log.warning("DFT %s/%d failed: %s", tid, k, exc)
    return {"completed": done, "given_up": len(pending_units(store, cfg.dft_max_attempts)[1]), "waiting_on_scheduler": False}


def run_screen(config: str | Path, *, resume: bool = False, overrides: dict[str, Any] | None = None,
               progress: bool = True, wait_dft: bool | None = None, stop_after: str | None = None) -> dict[str, Any]:
    """Run (or continue) a screen. Returns {"stages": per-stage reports, "summary": summary dict}.

    ``stop_after`` ("sample", "relax", "rank") ends the run after that stage (the next call continues).
    """
    cfg = load_screen_config(config, overrides)
    store = open_run(cfg, resume=resume)
    log.info("run store %s: targets %s", store.root, store.target_ids)
    stages: dict[str, Any] = {}
    for name, fn in (("sample", stage_sample), ("relax", stage_relax), ("rank", stage_rank)):
        stages[name] = fn(cfg, store, progress)
        log.info("%s: %s", name, stages[name])
        if stop_after == name:
            return {"stages": stages, "summary": None, "store": str(store.root)}
    stages["dft"] = stage_dft(cfg, store, progress, wait_dft)
    from cluster.accounting import record_slurm_usage

    record_slurm_usage(store.root)  # sacct node-hours/GPU-hours when on Slurm (nothing otherwise)
    summary = write_summary(store, predict_site_dos=site_dos_predictor(cfg.rank.loader, dict(cfg.rank.options)))
    summary["dft_waiting_on_scheduler"] = bool(stages["dft"].get("waiting_on_scheduler"))
    print(format_summary(summary))
    if summary["dft_waiting_on_scheduler"]:
        print(f"DFT jobs submitted: collect with `dosmatgen screen {config} --resume` when they finish")
    return {"stages": stages, "summary": summary, "store": str(store.root)}


def main(argv: list[str] | None = None) -> int:
    """``python -m cluster.screen CONFIG [--resume]`` (the same as ``dosmatgen screen``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m cluster.screen")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    from dosmatgen.cli.screen import parse_overrides

    try:
        run_screen(args.config, resume=args.resume, overrides=parse_overrides(args.set))
    except DosmatgenError as exc:
        import sys

        print(f"screen: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
