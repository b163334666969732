"""Throughput of the screen's distributed stages on this machine (run inside a private network namespace):

    unshare -n sh -c 'ip link set lo up && python benchmarks/bench_screen_stages.py sample --workers 1 2'
    unshare -n sh -c 'ip link set lo up && python benchmarks/bench_screen_stages.py relax --workers 1 2'

* ``sample``: Ray CPU actors (one thread each) running the diffusion sampler of a randomly initialised
  denoiser (``--preset small|paper``, ``--steps`` reverse steps; throughput does not depend on the weights) over
  ``--shards`` shards of ``--shard-size`` candidates with 4-8 atoms. ``--sampler random`` uses the random baseline.
* ``relax``: Dask LocalCluster workers (one thread each) running the EMT baseline relaxer over the same layout.

Prints one JSON line per worker count: candidates, seconds (stage wall time, actor/worker start-up excluded
where possible), candidates/s, the speed-up over the first count and the 1-minute load average (the machine is
shared: a load above the core count makes the numbers pessimistic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_checkpoint(path: Path, preset: str, steps: int) -> str:
    import torch

    from dosmatgen.diffusion.process import DiffusionConfig
    from dosmatgen.dos.scaler import PerBinStandardScaler
    from dosmatgen.model.config import DenoiserConfig
    from dosmatgen.model.cspnet import CSPNetDenoiser
    from dosmatgen.training.checkpoint import DenoiserCheckpoint, save_checkpoint, scalers_to_tensors

    cfg = DenoiserConfig.small() if preset == "small" else DenoiserConfig.paper()
    torch.manual_seed(0)
    model = CSPNetDenoiser(cfg)
    scaler = PerBinStandardScaler().fit(np.abs(np.random.default_rng(0).normal(size=(64, 400))))
    counts = [0] * 9
    for n in range(4, 9):
        counts[n] = 10
    save_checkpoint(path, DenoiserCheckpoint(model_config=cfg, diffusion_config=DiffusionConfig(num_steps=steps),
                                             model_state=model.state_dict(), scalers=scalers_to_tensors({"site": scaler}),
                                             num_atoms_counts=counts))
    return str(path)


def make_store(root: Path, shards: int, shard_size: int):
    from dosmatgen.dos.grid import GPAW_V1_GRID
    from dosmatgen.runstore import RunLayout, RunStore, TargetPlan
    from dosmatgen.targets import load_builtin_target

    n = shards * shard_size
    plan = TargetPlan("au3ni", np.resize(np.repeat(np.arange(4, 9), max(1, n // 5)), n),
                      load_builtin_target("target-Au3Ni").features.astype(np.float64))
    return RunStore.create(root, RunLayout(shard_size, 8, 1, 0, GPAW_V1_GRID, ("s", "p", "d")), [plan])


def bench_sample(args) -> None:
    import ray

    from dosmatgen_cluster.ray_sampling import make_actors, run_sampling

    tmp = Path(tempfile.mkdtemp(prefix="bench-sample-"))
    if args.sampler == "diffusion":
        loader, options = "dosmatgen.screen.library_stages:load_diffusion_sampler", {
            "checkpoint": make_checkpoint(tmp / "ckpt.pt", args.preset, args.steps)}
    else:
        loader, options = "dosmatgen.screen.baseline:load_random_sampler", {}
    ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
    base = None
    try:
        for w in args.workers:
            store = make_store(tmp / f"run{w}", args.shards, args.shard_size)
            units = [("au3ni", s) for s in range(args.shards)]
            # start the actors, load the model and sample one throw-away shard each (not timed)
            actors = make_actors(loader, options, w, use_gpu=False, name_prefix=f"bench{w}")
            warm = make_store(tmp / f"warm{w}", w, 1)
            run_sampling(warm.root, [("au3ni", s) for s in range(w)], loader, options, actors=actors, timeout_s=3600, progress=False)
            t0 = time.perf_counter()
            rep = run_sampling(store.root, units, loader, options, actors=actors, timeout_s=3600, progress=False)
            dt = time.perf_counter() - t0
            for a in actors:
                ray.kill(a)
            rate = rep.candidates / dt
            base = base or rate
            print(json.dumps({"stage": "sample", "sampler": args.sampler, "preset": args.preset, "steps": args.steps,
                              "workers": w, "candidates": rep.candidates, "seconds": round(dt, 2),
                              "candidates_per_s": round(rate, 3), "speedup": round(rate / base, 2),
                              "loadavg_1min": os.getloadavg()[0]}), flush=True)
    finally:
        ray.shutdown()


def bench_relax(args) -> None:
    from dosmatgen_cluster.dask_relax import dask_client, run_relax
    from dosmatgen.screen.baseline import load_random_sampler
    from dosmatgen.screen.stages import FilterConfig, sample_shard

    tmp = Path(tempfile.mkdtemp(prefix="bench-relax-"))
    base = None
    for w in args.workers:
        store = make_store(tmp / f"run{w}", args.shards, args.shard_size)
        sampler = load_random_sampler()
        for s in range(args.shards):
            sample_shard(store, "au3ni", s, sampler)
        with dask_client({"cluster": "local", "n_workers": w, "threads_per_worker": 1}) as client:
            client.run(lambda: __import__("dosmatgen.screen.baseline"))  # warm imports (not timed)
            t0 = time.perf_counter()
            rep = run_relax(client, store.root, [("au3ni", s) for s in range(args.shards)],
                            "dosmatgen.screen.baseline:load_emt_relaxer", {"fmax": 0.05, "steps": args.relax_steps},
                            FilterConfig(require_converged=False), timeout_s=7200, progress=False)
            dt = time.perf_counter() - t0
        rate = rep.relaxed / dt
        base = base or rate
        print(json.dumps({"stage": "relax", "relaxer": "emt", "max_steps": args.relax_steps, "workers": w,
                          "candidates": rep.relaxed, "seconds": round(dt, 2), "candidates_per_s": round(rate, 3),
                          "speedup": round(rate / base, 2), "loadavg_1min": os.getloadavg()[0]}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=["sample", "relax"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--shard-size", type=int, default=8)
    p.add_argument("--sampler", choices=["diffusion", "random"], default="diffusion")
    p.add_argument("--preset", choices=["small", "paper"], default="small")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--relax-steps", type=int, default=50)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage == "sample":
        bench_sample(args)
    else:
        bench_relax(args)


if __name__ == "__main__":
    main()
