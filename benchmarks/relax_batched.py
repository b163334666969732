"""Benchmark: batched CHGNet relaxation vs one-at-a-time ASE FIRE + FrechetCellFilter, same model, same fmax.

Runs in ONE process, back to back (the machine is shared and noisy, so compare the ratio):

1. ``batched``      dosmatgen's BatchedRelaxer + CHGNetMLFF (one CHGNet call per step for the batch);
2. ``ase-stock``    ASE FIRE(FrechetCellFilter) per structure with chgnet's own ``CHGNetCalculator``
                    (what a user would write; the baseline of the target);
3. ``ase-ours``     the same ASE loop with dosmatgen's MLFFCalculator(CHGNetMLFF) (our single-pass
                    forward, batch of one): separates the gain from batching from the gain of our forward.

All use the same loaded CHGNet 0.3.0 weights. BLAS is limited to one thread (OPENBLAS_NUM_THREADS=1)
for every mode: scipy's 3x3 LAPACK calls in ASE's filter are otherwise 10x slower on a loaded 2-core box.
The modes are interleaved chunk by chunk (``--chunk`` structures; the batched relaxer gets each chunk as
one batch) so that load swings on the shared machine affect every mode alike; wall time AND process CPU
time are reported (CPU time is the robust number on an oversubscribed box; torch runs 1 thread).
Reports structures/s, the ratios, and the median |dE| per atom between batched and each ASE mode
(final energies), plus step counts.

    python benchmarks/relax_batched.py [--n 64] [--fmax 0.05] [--batch-size 64] [--chunk 16] [--modes batched,ase-stock,ase-ours]

Mode ``chgnet-graph-batched`` is ``batched`` with CHGNet's own graph code instead of the numpy one
(:mod:`dosmatgen.relax.chgnet_graph`): the before/after of that change in one run (final energies must be equal).

Mode ``chgnet-forward-batched`` is ``batched`` with CHGNet's own forward (``forward_code="chgnet"``) instead of the
factored one (:mod:`dosmatgen.relax.chgnet_factored`): the before/after of that change in one run (final energies
equal to float32 rounding, so near-identical trajectories).

Mode ``batched-bfgs`` is the batched relaxer with ASE's BFGS update instead of FIRE (``RelaxSettings(optimizer=
"bfgs")``); the ASE modes always run FIRE, the reference of the target, so the |dE| of ``batched-bfgs`` against
them measures how far BFGS's minima are from FIRE's (``n_lower_by_2_meV``: BFGS found a lower one).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dosmatgen.io.structure_files import read_structures  # noqa: E402
from dosmatgen.relax.ase_calculator import MLFFCalculator  # noqa: E402
from dosmatgen.relax.ase_reference import relax_sequential_ase  # noqa: E402
from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings  # noqa: E402
from dosmatgen.relax.mlff_chgnet import CHGNetMLFF  # noqa: E402

DATA = Path(__file__).parent / "data" / "relax64.extxyz"


def _summary(name, results, seconds):
    steps = [r.steps for r in results]
    return {
        "mode": name,
        "n": len(results),
        "seconds": round(seconds, 2),
        "structures_per_s": round(len(results) / seconds, 4),
        "converged": sum(r.converged for r in results),
        "failed": sum(r.status in ("failed", "rejected") for r in results),
        "mean_steps": round(float(np.mean(steps)), 1),
        "total_evaluations": int(sum(steps) + len(results)),
    }


def _de(a, b):
    signed = [x.energy_relaxed_per_atom - y.energy_relaxed_per_atom for x, y in zip(a, b) if x.ok and y.ok]
    d = [abs(v) for v in signed]
    return {
        "n_abs_dE_above_2_meV": int(sum(v > 0.002 for v in d)),
        "n_lower_by_2_meV": int(sum(v < -0.002 for v in signed)),  # the first mode found a lower minimum
        "n_higher_by_2_meV": int(sum(v > 0.002 for v in signed)),
        "n_both_converged": int(sum(x.converged and y.converged for x, y in zip(a, b))),
        "median_abs_dE_meV_per_atom": round(1000 * float(np.median(d)), 3),
        "p90_abs_dE_meV_per_atom": round(1000 * float(np.percentile(d, 90)), 3),
        "max_abs_dE_meV_per_atom": round(1000 * float(np.max(d)), 3),
        "n_compared": len(d),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--modes", default="batched,ase-stock,ase-ours")
    ap.add_argument("--json", default=None, help="write the numbers here")
    ap.add_argument("--chunk", type=int, default=16, help="structures per interleaved chunk (each mode runs each chunk)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: oversubscribed shared box)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    _, crystals = read_structures(args.data)
    crystals = crystals[: args.n]
    mlff = CHGNetMLFF()
    modes = args.modes.split(",")
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        "load_average_start": os.getloadavg(),
        "fmax": args.fmax,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "n_atoms": {int(k): int(v) for k, v in zip(*np.unique([c.num_atoms for c in crystals], return_counts=True))},
        "modes": {},
    }
    # warm-up (first CHGNet call pays one-off costs)
    mlff.compute_crystals(crystals[:2])
    stock_calc = None
    if "ase-stock" in modes:
        from chgnet.model.dynamics import CHGNetCalculator

        with contextlib.redirect_stdout(io.StringIO()):
            stock_calc = CHGNetCalculator(model=mlff.model, use_device="cpu")
    results = {m: [] for m in modes}
    wall = {m: 0.0 for m in modes}
    cpu = {m: 0.0 for m in modes}
    calls: dict[str, int] = {}
    # interleave the modes chunk by chunk so that load changes on the shared machine hit all of them alike
    for lo in range(0, len(crystals), args.chunk):
        chunk = crystals[lo : lo + args.chunk]
        for mode in modes:
            t0, c0 = time.perf_counter(), time.process_time()
            if mode in ("batched", "batched-bfgs"):
                relaxer = BatchedRelaxer(mlff, RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size,
                                                          optimizer="bfgs" if mode == "batched-bfgs" else "fire"))
                res = relaxer.run(chunk)
                calls[mode] = calls.get(mode, 0) + relaxer.n_calls
            elif mode == "chgnet-graph-batched":
                # the batched relaxer as before the numpy graph (same weights, CHGNet's own graph code)
                relaxer = BatchedRelaxer(CHGNetMLFF(model=mlff.model, graph_code="chgnet"),
                                         RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size))
                res = relaxer.run(chunk)
            elif mode == "chgnet-forward-batched":
                # the batched relaxer as before the factored forward (same weights, CHGNet's own _compute)
                relaxer = BatchedRelaxer(CHGNetMLFF(model=mlff.model, forward_code="chgnet"),
                                         RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size))
                res = relaxer.run(chunk)
            elif mode == "ase-stock":
                res, _ = relax_sequential_ase(chunk, stock_calc, fmax=args.fmax, max_steps=args.max_steps)
            elif mode == "ase-ours":
                res, _ = relax_sequential_ase(chunk, MLFFCalculator(mlff), fmax=args.fmax, max_steps=args.max_steps)
            else:
                raise SystemExit(f"unknown mode {mode}")
            wall[mode] += time.perf_counter() - t0
            cpu[mode] += time.process_time() - c0
            results[mode].extend(res)
            print(json.dumps({"chunk_start": lo, "mode": mode, "wall_s": round(wall[mode], 1), "cpu_s": round(cpu[mode], 1),
                              "load": os.getloadavg()[0]}), flush=True)
    for mode in modes:
        summary = _summary(mode, results[mode], wall[mode])
        summary["cpu_seconds"] = round(cpu[mode], 2)
        summary["structures_per_cpu_s"] = round(len(results[mode]) / cpu[mode], 4)
        if mode in calls:
            summary["mlff_calls"] = calls[mode]
        out["modes"][mode] = summary
    for fast in ("batched", "batched-bfgs"):
        if fast not in results:
            continue
        suffix = "" if fast == "batched" else "_bfgs"
        for mode in results:
            if mode.startswith("batched"):
                continue
            out["modes"][mode][f"speedup_batched{suffix}_over_this_wall"] = round(
                out["modes"][fast]["structures_per_s"] / out["modes"][mode]["structures_per_s"], 2
            )
            out["modes"][mode][f"speedup_batched{suffix}_over_this_cpu"] = round(
                out["modes"][fast]["structures_per_cpu_s"] / out["modes"][mode]["structures_per_cpu_s"], 2
            )
            out["modes"][mode][f"vs_batched{suffix}"] = _de(results[fast], results[mode])
            out["modes"][mode][f"same_step_count{suffix}"] = sum(a.steps == b.steps for a, b in zip(results[fast], results[mode]))
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
