"""Denoiser efficiency before/after in ONE run: the edge-list CSP layers (gathers + scatter mean, the old path) vs
the dense per-size groups (the default), on the doubled CFG batch of one sampling step.

For each config, the two paths are timed interleaved (``--repeats`` rounds, best of each), on the same random
4–8-atom batch, with the matmul peak measured in the same process. Times are process CPU seconds (torch on one thread by default:
on a shared, oversubscribed machine CPU time is robust where wall time is not); wall times are reported too. FLOPs of one call are counted with torch's
FlopCounterMode (matmuls only, the same for both paths), so ``fraction_of_peak`` = FLOPs / seconds / peak is the
figure of benchmarks/MODEL_RESULTS.md (12 % small, 34 % paper there, measured on wall time with 2 threads under
load). The grouped path folds the CFG doubled batch's geometry features (fewer FLOPs for the same function), so
``fraction_of_peak`` uses the edge-list path's FLOPs for both (work done per second, same work);
``*_fraction_of_peak_counted_flops`` uses each path's own count. Compare the ratios within one run.

    python benchmarks/denoiser_efficiency.py --configs small paper --batch 64 16 --repeats 5 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from functools import partial

import torch

import dosmatgen.model.cspnet as cspnet
from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.model.backbone import run_csp_layers
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.sampling import site_condition
from dosmatgen.sampling.guidance import call_denoiser, conditioned_and_dropped, doubled_state
from model_bench_common import CONFIGS, count_flops, matmul_peak_gflops, random_batch

PATHS = {"edge_list": partial(run_csp_layers, grouped=False), "grouped": partial(run_csp_layers, grouped=True)}


def cpu_matmul_peak_gflops(n: int = 1024, rounds: int = 6) -> float:
    """Best GFLOP per CPU-second of float32 n×n matmuls (the CPU-time twin of model_bench_common's wall-time peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / max(time.process_time() - c0, 1e-9) / 1e9)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["small", "paper"])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 16], help="crystals per config (doubled for CFG)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time = compute time)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"machine": f"{platform.node()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
           "load_average_start": os.getloadavg(), "configs": {}}
    for name, nb in zip(args.configs, args.batch):
        torch.manual_seed(0)
        model = CSPNetDenoiser(CONFIGS[name]).eval()
        diffusion = JointDiffusion(DiffusionConfig())
        clean = diffusion.clean_state(random_batch(nb))
        state = doubled_state(clean)
        cond = conditioned_and_dropped(site_condition(torch.randn(400), clean.num_atoms, None))
        t = torch.full((2 * nb,), 500)
        call = lambda: call_denoiser(model, state, t, cond)  # noqa: E731
        with torch.no_grad():
            flops_by_path = {}
            for p, fn in PATHS.items():
                cspnet.run_csp_layers = fn
                flops_by_path[p] = count_flops(call)
            flops = flops_by_path["edge_list"]  # the work of the old path: the same function, fewer FLOPs when folded
            best = {p: float("inf") for p in PATHS}
            wall = {p: float("inf") for p in PATHS}
            results = {}
            peak, wall_peak = 0.0, 0.0
            for _ in range(args.repeats):
                peak = max(peak, cpu_matmul_peak_gflops())
                wall_peak = max(wall_peak, matmul_peak_gflops(seconds=0.5))
                for p, fn in PATHS.items():
                    cspnet.run_csp_layers = fn
                    t0, c0 = time.perf_counter(), time.process_time()
                    results[p] = call()
                    best[p] = min(best[p], time.process_time() - c0)
                    wall[p] = min(wall[p], time.perf_counter() - t0)
            cspnet.run_csp_layers = run_csp_layers
        diff = max(float((getattr(results["grouped"], f) - getattr(results["edge_list"], f)).abs().max())
                   for f in ("coord_score", "lattice_eps", "type_eps"))
        out["configs"][name] = {
            "batch": nb, "atoms_cfg_batch": int(state.num_atoms.sum()), "edges_cfg_batch": int((state.num_atoms**2).sum()),
            "gflop_per_call": flops / 1e9, "gflop_per_call_counted": {p: f / 1e9 for p, f in flops_by_path.items()},
            **{f"{p}_fraction_of_peak_counted_flops": flops_by_path[p] / best[p] / 1e9 / peak for p in PATHS}, "matmul_peak_gflop_per_cpu_s": peak, "matmul_peak_gflops_wall": wall_peak,
            **{f"{p}_cpu_s_per_call": best[p] for p in PATHS},
            **{f"{p}_wall_s_per_call": wall[p] for p in PATHS},
            **{f"{p}_fraction_of_peak": flops / best[p] / 1e9 / peak for p in PATHS},
            "speedup_grouped_over_edge_list_cpu": best["edge_list"] / best["grouped"],
            "speedup_grouped_over_edge_list_wall": wall["edge_list"] / wall["grouped"],
            "max_abs_output_difference": diff,
        }
        print(json.dumps({name: out["configs"][name]}, indent=1), flush=True)
    out["load_average_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
