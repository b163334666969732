"""The README's main job (the local screen, 260 candidates) before and after the speed changes, side by side.

Runs ``dosmatgen screen configs/screen/local.yaml`` once per variant, each in a fresh run folder, up to the rank
stage (``--with-dft``: through the GPAW top K as well), and records the wall time of each run, the per-stage times
the screen logs, and the quality of its top candidates: the surrogate MAE (scaled features, the rank score) of the
best 10 ranked candidates. A variant is a label and ``--set`` overrides of the config:

* ``before`` (default): the screen as it was before issue 19: 1000 sampling steps, FIRE, Dask's malloc settings
  in the relax workers (``relax.dask.reuse_freed_memory=false``), CHGNet's own graph code
  (``relax.options.mlff_options.graph_code=chgnet``) and CHGNet's own forward
  (``relax.options.mlff_options.forward_code=chgnet``);
* ``after`` (default): the config as it is (``configs/screen/local.yaml``: 100 steps, FIRE);
* ``--variant LABEL KEY=VALUE ...`` adds one (repeatable; given variants replace the defaults).

    unshare -n bash -c 'ip link set lo up; OMP_NUM_THREADS=1 python benchmarks/screen_speed.py --out /tmp/screen-speed'

Writes ``OUT/screen_speed.json``. Run it on an otherwise idle machine: the ratio of the two wall times is the
number to report.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STAGE_LINE = re.compile(r"dosmatgen\.screen\.driver: (sample|relax|rank|dft): (\{.*\})")


def top_scores(run_dir: Path) -> np.ndarray:
    """The rank scores of the selected (top K) candidates, best first, read from the run store."""
    from dosmatgen.runstore.store import RunStore
    from dosmatgen.screen.summary import ranked_rows

    return np.array([float(r["score"]) for r in ranked_rows(RunStore.open(run_dir, mode="r"))], dtype=np.float64)


#: the screen before issue 19's speed work, as overrides of today's config
BEFORE = ["sample.options.sampling_steps=1000", "relax.options.optimizer=fire", "relax.dask.reuse_freed_memory=false",
          "relax.options.mlff_options.graph_code=chgnet", "relax.options.mlff_options.forward_code=chgnet"]


def run_screen(config: Path, out: Path, label: str, overrides: list[str], with_dft: bool, top: int) -> dict:
    run_dir = out / label
    cmd = [sys.executable, "-m", "dosmatgen.cli.main", "screen", str(config), "--no-progress", "--set", f"run.dir={run_dir}"]
    for o in overrides:
        cmd += ["--set", o]
    if not with_dft:
        cmd += ["--stop-after", "rank", "--set", f"rank.top_k={top}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (out / f"{label}.log").write_text(log)
    if proc.returncode != 0:
        raise SystemExit(f"screen {label} failed (exit {proc.returncode}); log in {out / f'{label}.log'}")
    stages = {}
    for m in STAGE_LINE.finditer(log):
        info = ast.literal_eval(m.group(2))  # the driver logs a dict literal of numbers, strings and lists
        stages[m.group(1)] = {k: info[k] for k in ("seconds", "candidates", "relaxed", "passed", "scored") if k in info}
    scores = top_scores(run_dir)
    return {"variant": label, "overrides": overrides, "wall_s": wall, "stages": stages, "top_scores": scores.tolist(),
            "best_score": float(scores.min()) if scores.size else None,
            "mean_top_score": float(scores.mean()) if scores.size else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "screen" / "local.yaml")
    p.add_argument("--variant", nargs="+", action="append", metavar=("LABEL", "KEY=VALUE"),
                   help="a run: label and config overrides (repeatable; default: before and after)")
    p.add_argument("--top", type=int, default=10, help="without --with-dft: rank.top_k of both runs (default 10)")
    p.add_argument("--with-dft", action="store_true", help="run the whole screen, GPAW top K included")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [(v[0], v[1:]) for v in args.variant] if args.variant else [("before", BEFORE), ("after", [])]
    runs = [run_screen(args.config, args.out, label, overrides, args.with_dft, args.top) for label, overrides in variants]
    base = runs[0]
    for r in runs:
        r["speedup_vs_first"] = base["wall_s"] / r["wall_s"]
    result = {"command": " ".join(sys.argv), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
              "load_average_at_end": os.getloadavg()}, "runs": runs}  # fmt: skip
    (args.out / "screen_speed.json").write_text(json.dumps(result, indent=1))
    for r in runs:
        st = " ".join(f"{k} {v['seconds']:.0f} s" for k, v in r["stages"].items())
        print(f"{r['variant']}: wall {r['wall_s']:.0f} s ({st}); best surrogate score {r['best_score']:.4f}, "
              f"mean of top {len(r['top_scores'])} {r['mean_top_score']:.4f}; speed-up {r['speedup_vs_first']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
