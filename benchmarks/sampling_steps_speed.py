"""Sampling cost at several S (fewer-step sampling) measured side by side in ONE process: the bundled CFG model,
the same batch of test structures noised to ``--t-start``, every site conditioned on its own DOS (the evaluation's
reconstruction setting), S values interleaved ``--repeats`` times, best process CPU time of each (torch on one
thread; CPU time is robust on a shared machine), plus the denoiser calls.

    python benchmarks/sampling_steps_speed.py --steps 50 100 200 500 1000 --t-start 200 --n 16 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from dosmatgen.batch import collate_crystals
from dosmatgen.data.bundled import bundled_dataset_path
from dosmatgen.data.store import DatasetStore
from dosmatgen.evaluation.conditioning_set import load_conditioning_set
from dosmatgen.evaluation.models import load_denoiser
from dosmatgen.evaluation.reconstruction import all_sites_condition
from dosmatgen.sampling import ClassifierFreeGuidance, PredictorCorrectorSampler, template_start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="bundled:dosmatgen-small")
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    ap.add_argument("--t-start", type=int, default=200)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from dosmatgen.checkpoint_paths import resolve_checkpoint

    den = load_denoiser(resolve_checkpoint(args.checkpoint))
    cs = load_conditioning_set(DatasetStore.open(bundled_dataset_path()), "test", args.n, 0)
    cond = all_sites_condition([den.site_scaler.transform(d).astype(np.float32) for d in cs.site_dos])
    clean = den.diffusion.clean_state(collate_crystals(cs.crystals))
    best = {s: float("inf") for s in args.steps}
    calls = {}
    for _ in range(args.repeats):
        for s in args.steps:
            diffusion = den.diffusion.with_sampling_steps(s)
            gen = torch.Generator().manual_seed(0)
            start = template_start(diffusion, clean, args.t_start, gen)
            c0 = time.process_time()
            out = PredictorCorrectorSampler(den.model, diffusion).run(start, cond, ClassifierFreeGuidance(1.0), generator=gen)
            best[s] = min(best[s], time.process_time() - c0)
            calls[s] = out.model_calls
    ref = max(args.steps)
    rows = [{"sampling_steps": s, "t_start": args.t_start, "n": len(cs), "denoiser_calls": calls[s],
             "cpu_s": round(best[s], 3), "cpu_s_per_structure": round(best[s] / len(cs), 4),
             f"speedup_over_S{ref}": round(best[ref] / best[s], 2)} for s in args.steps]
    out = {"command": "python benchmarks/sampling_steps_speed.py " + " ".join(
               f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if v is not None),
           "machine": f"{os.cpu_count()} cores (shared), torch threads 1", "load_average": os.getloadavg(), "rows": rows}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
