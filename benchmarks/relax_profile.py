"""Where batched CHGNet relaxation spends its time: cProfile of ``BatchedRelaxer.run`` split into graph
construction, batch assembly, CHGNet forward, the reverse pass (forces and stress) and FIRE + cell-filter
bookkeeping, with the MLFF call sizes (the batch shrinks as structures converge).

    OPENBLAS_NUM_THREADS=1 python benchmarks/relax_profile.py --n 32 --batch-size 32 --json OUT.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dosmatgen.io.structure_files import read_structures  # noqa: E402
from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings  # noqa: E402
from dosmatgen.relax.mlff_chgnet import CHGNetMLFF  # noqa: E402

DATA = Path(__file__).parent / "data" / "relax64.extxyz"
#: (label, file suffix, function name) of the profiled parts (cumulative time of each)
PARTS = [
    ("graph construction (CHGNet graphs from arrays)", "mlff_chgnet.py", "_graphs"),
    ("batch assembly (bases, offsets)", "mlff_chgnet.py", "_assemble"),
    ("CHGNet forward (energy)", "chgnet/model/model.py", "_compute"),
    ("reverse pass (forces and stress)", "torch/autograd/__init__.py", "grad"),
    ("FIRE + Frechet cell filter bookkeeping", "batched_fire.py", "update"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    _, crystals = read_structures(args.data)
    crystals = crystals[: args.n]
    mlff = CHGNetMLFF()
    mlff.compute_crystals(crystals[:2])  # warm-up
    relaxer = BatchedRelaxer(mlff, RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size))
    prof = cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    prof.enable()
    results = relaxer.run(crystals)
    prof.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = sum(v[2] for v in stats.values())
    parts = {}
    for label, suffix, name in PARTS:
        ct = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(suffix) and n == name)
        parts[label] = {"seconds": round(ct, 2), "fraction": round(ct / total, 3)}
    sizes = np.asarray(relaxer.call_sizes)
    out = {
        "n": len(results), "batch_size": args.batch_size, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "profiled_s": round(total, 1), "load_average": os.getloadavg(), "parts": parts,
        "mlff_calls": relaxer.n_calls, "structure_evaluations": int(sizes.sum()),
        "mean_call_size": round(float(sizes.mean()), 2), "calls_with_at_most_4": int((sizes <= 4).sum()),
        "converged": sum(r.converged for r in results), "mean_steps": round(float(np.mean([r.steps for r in results])), 1),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
