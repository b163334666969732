"""Denoiser efficiency before/after in ONE run: the edge-list CSP layers (gathers + scatter mean, the old path) vs
the dense per-size groups (the default), on the doubled CFG batch of one sampling step.

For each config, the two paths are timed interleaved (``--repeats`` rounds, best of each), on the same random
4–8-atom batch, with the matmul peak measured in the same process. FLOPs of one call are counted with torch's
FlopCounterMode (matmuls only, the same for both paths), so ``fraction_of_peak`` = FLOPs / seconds / peak is the
figure of benchmarks/MODEL_RESULTS.md (12 % small, 34 % paper on 2026-12-0x). Compare the ratio within one run.

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["small", "paper"])
    ap.add_argument("--batch", type=int, nargs="+", default=[64, 16], help="crystals per config (doubled for CFG)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
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
            flops = count_flops(call)
            best = {p: float("inf") for p in PATHS}
            results = {}
            peak = 0.0
            for _ in range(args.repeats):
                peak = max(peak, matmul_peak_gflops(seconds=1.0))
                for p, fn in PATHS.items():
                    cspnet.run_csp_layers = fn
                    t0 = time.perf_counter()
                    results[p] = call()
                    best[p] = min(best[p], time.perf_counter() - t0)
            cspnet.run_csp_layers = run_csp_layers
        diff = max(float((getattr(results["grouped"], f) - getattr(results["edge_list"], f)).abs().max())
                   for f in ("coord_score", "lattice_eps", "type_eps"))
        out["configs"][name] = {
            "batch": nb, "atoms_cfg_batch": int(state.num_atoms.sum()), "edges_cfg_batch": int((state.num_atoms**2).sum()),
            "gflop_per_call": flops / 1e9, "matmul_peak_gflops": peak,
            **{f"{p}_s_per_call": best[p] for p in PATHS},
            **{f"{p}_fraction_of_peak": flops / best[p] / 1e9 / peak for p in PATHS},
            "speedup_grouped_over_edge_list": best["edge_list"] / best["grouped"],
            "max_abs_output_difference": diff,
        }
        print(json.dumps({name: out["configs"][name]}, indent=1), flush=True)
    out["load_average_end"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
