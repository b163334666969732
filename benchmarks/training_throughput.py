"""Training throughput (structures/s) of the denoiser train step on this CPU (paper and small configs), random
4–8-atom crystals, with the default condition dropout; FLOPs of one step (forward + backward) against the measured
matmul peak; peak RSS; optional torch.profiler top operators.

    python benchmarks/training_throughput.py --config small --batch 64 --steps 5
    python benchmarks/training_throughput.py --config paper --batch 16 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.training.condition_dropout import ConditionDropoutConfig
from dosmatgen.training.step import train_step
from model_bench_common import CONFIGS, count_flops, matmul_peak_gflops, peak_rss_mib, random_batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = CONFIGS[args.config]
    model = CSPNetDenoiser(cfg)
    diffusion = JointDiffusion(DiffusionConfig())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = random_batch(args.batch)
    gen = torch.Generator().manual_seed(1)
    dropout = ConditionDropoutConfig()
    step = lambda: train_step(model, diffusion, batch, opt, dropout=dropout, generator=gen)  # noqa: E731
    step()  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best = min(times)
    flops = count_flops(step)
    peak = matmul_peak_gflops()
    result = {
        "config": args.config, "params": sum(p.numel() for p in model.parameters()), "batch": args.batch,
        "atoms": int(batch.num_atoms.sum()), "threads": torch.get_num_threads(), "steps": args.steps,
        "s_per_step_best": best, "s_per_step_median": sorted(times)[len(times) // 2],
        "structures_per_s": args.batch / best, "gflop_per_step": flops / 1e9, "achieved_gflops": flops / best / 1e9,
        "matmul_peak_gflops": peak, "fraction_of_peak": flops / best / 1e9 / peak, "peak_rss_mib": peak_rss_mib(),
    }
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        ka = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ka)
        rows = sorted(ka, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        result["profile_top_self_cpu"] = [(e.key, round(e.self_cpu_time_total / total, 3)) for e in rows]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
