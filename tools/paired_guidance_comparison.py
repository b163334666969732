"""Maintainer tool (issue 19): one guidance mode of an evaluation folder against the modes of another, paired by structure.

Both folders must come from ``dosmatgen evaluate`` on the same split (the structures are paired by id; an id missing
from the other folder is left out and counted). For every t_start and every mode of ``--against`` it prints the
difference ``MODE − OTHER`` in DOS MAE(ŷ_gen, y) (site-weighted) and in structure match, with the same 95 % paired
bootstrap the science acceptance uses (``dosmatgen.evaluation.bootstrap.paired_difference``).

    python tools/paired_guidance_comparison.py EVAL_DIR --mode classifier --against OTHER_EVAL_DIR [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def compare(rows_a: list[dict], rows_b: list[dict], key: str, weighted: bool, seed: int) -> dict | None:
    from dosmatgen.evaluation.bootstrap import paired_difference

    by_id = {r["id"]: r for r in rows_b}
    pairs = [(r, by_id[r["id"]]) for r in rows_a if r["id"] in by_id and r.get(key) is not None and by_id[r["id"]].get(key) is not None]
    if not pairs:
        return None
    va = np.array([float(a[key]) for a, _ in pairs])
    vb = np.array([float(b[key]) for _, b in pairs])
    w = np.array([float(a.get("num_atoms") or 1) for a, _ in pairs]) if weighted else np.ones(len(pairs))
    diff = paired_difference(va, vb, w, seed=seed)
    return {"n_structures": len(pairs), "n_unpaired": len(rows_a) - len(pairs), "mean_a": float(np.sum(va * w) / np.sum(w)),
            "mean_b": float(np.sum(vb * w) / np.sum(w)), "difference": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dir")
    p.add_argument("--mode", required=True, help="guidance mode of EVAL_DIR to compare")
    p.add_argument("--against", required=True, help="evaluation folder with the other modes")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    a = json.loads((Path(args.eval_dir) / "metrics.json").read_text())
    b = json.loads((Path(args.against) / "metrics.json").read_text())
    seed = int(a["settings"]["seed"])
    out: dict = {"eval_dir": args.eval_dir, "mode": args.mode, "against": args.against, "comparisons": []}
    for t, entry in sorted((a["results"].get(args.mode) or {}).items(), key=lambda kv: int(kv[0])):
        for other, by_t in b["results"].items():
            e2 = (by_t or {}).get(t)
            if not isinstance(e2, dict) or not e2.get("per_sample") or not entry.get("per_sample"):
                continue
            for metric, key, weighted in (("dos_mae", "mae_gen_vs_target", True), ("structure_match", "structure_match", False)):
                c = compare(entry["per_sample"], e2["per_sample"], key, weighted, seed)
                if c is None:
                    continue
                out["comparisons"].append({"t_start": int(t), "other": other, "metric": metric, **c})
                d = c["difference"]
                scale = 100.0 if metric == "structure_match" else 1.0
                print(f"t_start {t}: {args.mode} − {other} {metric}: {scale * d['mean']:+.3f} [{scale * d['lo']:+.3f}, "
                      f"{scale * d['hi']:+.3f}] ({args.mode} {scale * c['mean_a']:.3f}, {other} {scale * c['mean_b']:.3f}; "
                      f"{c['n_structures']} structures, {c['n_unpaired']} unpaired)")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["comparisons"] else 1


if __name__ == "__main__":
    sys.exit(main())
