"""Quality/speed curve of fewer-step sampling: ``dosmatgen evaluate`` (the reconstruction protocol) at several S.

For each S the bundled CFG model reconstructs the same (seeded) test structures at each t_start, and the script
collects the generation time, the denoiser calls, the DOS MAE with its 95 % bootstrap interval over structures
(``dos_match_bootstrap``) and the structure-match rate with its 95 % bootstrap interval over structures (the
resampled mean of the per-structure 0/1 outcome, which depends only on the counts n_matched of n). It then says,
for every S, whether both intervals overlap the reference S's (the issue's acceptance criterion).

    python benchmarks/sampling_steps_curve.py --steps 50 100 200 500 1000 --t-start 200 1000 --limit 100 \
        --out /tmp/steps_curve --json benchmarks/results/sampling_steps_curve.json

Each S is one ``evaluate`` run in ``OUT/S{S}`` (``--resume`` reuses finished settings of an interrupted run).
``--reference-metrics METRICS.json`` takes the rows of S = T (every step) from an earlier ``dosmatgen evaluate`` run of
the same checkpoint, split, seed and protocol instead of re-running them (the full-grid sampler is the one-step
sampler bit for bit, tests/test_sampling_steps.py), e.g. docs/evaluation-report-acceptance/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from dosmatgen.evaluation.bootstrap import cluster_bootstrap


def match_interval(n_matched: int, n: int, seed: int = 0) -> dict:
    """Bootstrap interval of a rate over n structures (k = n_matched of them matched), resampling structures."""
    outcome = np.zeros(n)
    outcome[:n_matched] = 1.0
    return cluster_bootstrap(outcome, np.arange(n + 1), seed=seed)


def overlaps(a: dict, b: dict) -> bool:
    return bool(a["lo"] <= b["hi"] and b["lo"] <= a["hi"])


def summarize(metrics: dict, steps: int, t_start: int) -> dict:
    e = metrics["results"]["cfg"][str(t_start)]
    m = e["metrics"]
    sm = m["structure_match"]
    return {
        "sampling_steps": steps, "t_start": t_start, "n": sm["n"],
        "generation_s": e["timing"]["generation_s"], "model_calls": e["timing"]["model_calls"],
        "dos_mae": m["dos_match_bootstrap"]["mae_gen_vs_target"],
        "structure_match": {**match_interval(int(sm["n_matched"]), int(sm["n"])), "n_matched": sm["n_matched"]},
        "valid_rate": m["validity"]["valid_rate"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="bundled:dosmatgen-small")
    ap.add_argument("--surrogate", default="bundled:surrogate-small")
    ap.add_argument("--steps", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    ap.add_argument("--reference", type=int, default=None, help="the S the others are compared with (default the largest)")
    ap.add_argument("--t-start", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--reference-metrics", default=None, help="metrics.json of an earlier all-steps evaluate run (the S = T rows)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from dosmatgen.evaluation.protocol import evaluate

    rows = []
    for s in args.steps:
        t0 = time.perf_counter()
        metrics = evaluate(args.checkpoint, None, split="test", t_starts=args.t_start, guidance=["cfg"],
                           surrogate=args.surrogate, limit=args.limit, seed=args.seed, out=Path(args.out) / f"S{s}",
                           resume=args.resume, sampling_steps=s, novelty=False, n_examples=0,
                           batch_size=args.batch_size)
        for t in args.t_start:
            rows.append(summarize(metrics, s, t))
        print(f"S={s}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.reference_metrics:
        metrics = json.loads(Path(args.reference_metrics).read_text())
        for key, value in (("checkpoint", metrics["provenance"]["checkpoint"]["sha256"]), ("seed", metrics["settings"]["seed"]),
                           ("limit", metrics["settings"]["limit"])):
            print(f"reference {key}: {value}")
        if metrics["settings"]["limit"] != args.limit or metrics["settings"]["seed"] != args.seed:
            raise SystemExit("the reference run used another --limit or --seed")
        steps_ref = int(metrics["diffusion_steps"]) if isinstance(metrics.get("diffusion_steps"), int) else 1000
        for t in args.t_start:
            rows.append({**summarize(metrics, steps_ref, t), "from": args.reference_metrics})
    ref_s = args.reference or max(r["sampling_steps"] for r in rows)
    for r in rows:
        ref = next(q for q in rows if q["sampling_steps"] == ref_s and q["t_start"] == r["t_start"])
        r["dos_mae_overlaps_reference"] = overlaps(r["dos_mae"], ref["dos_mae"])
        r["structure_match_overlaps_reference"] = overlaps(r["structure_match"], ref["structure_match"])
    print(f"| t_start | S | model calls | generation s | DOS MAE [95 % CI] | structure match [95 % CI] | valid | overlaps S={ref_s} |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda q: (q["t_start"], q["sampling_steps"])):
        d, m = r["dos_mae"], r["structure_match"]
        print(f"| {r['t_start']} | {r['sampling_steps']} | {r['model_calls']} | {r['generation_s']:.0f} | "
              f"{d['mean']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}] | {m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}] | "
              f"{r['valid_rate']:.3f} | MAE {'yes' if r['dos_mae_overlaps_reference'] else 'NO'}, "
              f"match {'yes' if r['structure_match_overlaps_reference'] else 'NO'} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": "python benchmarks/sampling_steps_curve.py " + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items() if v not in (None, False)),
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, 2 CPU cores shared with other jobs",
            "reference_steps": ref_s, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
