"""Sampling throughput of 1000-step CFG predictor–corrector sampling on this CPU (paper and small configs).

Runs ``--steps`` reverse steps (each: corrector + predictor = 2 denoiser calls on the doubled CFG batch) on
``--batch`` random 4–8-atom crystals with random weights (speed does not depend on training), and extrapolates to
T = 1000 steps: structures/s = batch / (1000 × seconds per step). Compares one-pass CFG (one batched call) with two
separate passes, counts FLOPs of one denoiser call (torch FlopCounterMode, the doubled CFG batch), reports
achieved GFLOP/s against a measured matmul peak, peak RSS, and the top operators of a torch.profiler run.

    python benchmarks/sampling_throughput.py --config small --batch 64 --steps 5
    python benchmarks/sampling_throughput.py --config paper --batch 16 --steps 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.sampling import ClassifierFreeGuidance, PredictorCorrectorSampler, SamplingStart, site_condition
from dosmatgen.sampling.guidance import TwoPassClassifierFreeGuidance, call_denoiser, conditioned_and_dropped, doubled_state
from model_bench_common import CONFIGS, count_flops, matmul_peak_gflops, peak_rss_mib, random_batch


def time_sampling(sampler, diffusion, batch, guidance, steps: int, repeats: int) -> float:
    """Best seconds per reverse step over ``repeats`` runs of ``steps`` steps (t from T down)."""
    clean = diffusion.clean_state(batch)
    gen = torch.Generator().manual_seed(0)
    start = SamplingStart(diffusion.prior_sample(clean.num_atoms, gen), diffusion.num_steps)
    cond = site_condition(torch.randn(400, generator=gen), clean.num_atoms, None)
    # run only `steps` steps: a start whose loop ends early is the same loop body
    best = float("inf")
    for _ in range(repeats):
        short = SamplingStart(start.state, steps)
        t0 = time.perf_counter()
        sampler.run(short, cond, guidance, generator=gen)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=sorted(CONFIGS), default="small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = CONFIGS[args.config]
    model = CSPNetDenoiser(cfg).eval()
    diffusion = JointDiffusion(DiffusionConfig())
    batch = random_batch(args.batch)
    sampler = PredictorCorrectorSampler(model, diffusion, step_lr=5e-6)
    peak = matmul_peak_gflops()

    one = time_sampling(sampler, diffusion, batch, ClassifierFreeGuidance(1.0), args.steps, args.repeats)
    two = time_sampling(sampler, diffusion, batch, TwoPassClassifierFreeGuidance(1.0), args.steps, args.repeats)

    clean = diffusion.clean_state(batch)
    cond = site_condition(torch.randn(400), clean.num_atoms, None)
    t = torch.full((2 * args.batch,), 500)
    with torch.no_grad():
        flops_call = count_flops(lambda: call_denoiser(model, doubled_state(clean), t, conditioned_and_dropped(cond)))
    flops_per_step = 2 * flops_call  # corrector + predictor
    result = {
        "config": args.config, "hidden/layers/freqs/time": [cfg.hidden_dim, cfg.num_layers, cfg.num_freqs, cfg.time_dim],
        "params": sum(p.numel() for p in model.parameters()), "batch": args.batch,
        "atoms": int(clean.num_atoms.sum()), "edges_per_call": int(2 * (clean.num_atoms**2).sum()),
        "threads": torch.get_num_threads(), "measured_steps": args.steps,
        "one_pass_s_per_step": one, "two_pass_s_per_step": two, "two_pass_over_one_pass": two / one,
        "structures_per_s_1000_steps_one_pass": args.batch / (1000 * one),
        "structures_per_s_1000_steps_two_pass": args.batch / (1000 * two),
        "gflop_per_denoiser_call_cfg_batch": flops_call / 1e9,
        "achieved_gflops_one_pass": flops_per_step / one / 1e9, "matmul_peak_gflops": peak,
        "fraction_of_peak": flops_per_step / one / 1e9 / peak, "peak_rss_mib": peak_rss_mib(),
    }
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sampler.run(SamplingStart(diffusion.prior_sample(clean.num_atoms), 2), cond, ClassifierFreeGuidance(1.0))
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        result["profile_top_self_cpu"] = [(e.key, round(e.self_cpu_time_total / total, 3)) for e in rows]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
