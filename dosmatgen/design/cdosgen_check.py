"""CDOSGen check (issue 16): does the total-DOS generator follow its condition?

For test-split structures i = 1..n: condition the generator on the DFT total DOS d_i (with the structure's atom
count), generate one crystal, and predict its total DOS p_i with the surrogate (:mod:`dosmatgen.design.total_dos`;
the crystals are not relaxed). Then, as in the paper's Table 3:

* matched: cosine(d_i, p_i), Pearson(d_i, p_i), the Jensen-Shannon divergence (base 2) of the unit-area spectra,
  and |property(d_i) - property(p_i)| for band gap, DOS(E_F), N(E_F);
* random pairs: the same with p_sigma(i), sigma a seeded derangement (sigma(i) != i);
* the paired difference matched - random per structure, with a 95 % bootstrap interval over structures.

The generator beats random pairing when the interval of the cosine difference lies above 0. As a ceiling, the
same numbers for the surrogate DOS of the *true* test crystals against their own DFT DOS (``oracle``).

    python -m dosmatgen.design.cdosgen_check --checkpoint bundled:dosmatgen-small-total --limit 128 --out check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.checkpoint_paths import TOTAL_DOS_GENERATOR
from dosmatgen.design.scorer import cosine_rows
from dosmatgen.dos.property_targets import target_properties
from dosmatgen.metrics.dos_match import js_divergence_rows


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return cosine_rows(a, b)


def _stats(values: np.ndarray, seed: int) -> dict[str, Any]:
    from dosmatgen.evaluation.bootstrap import cluster_bootstrap

    values = np.asarray(values, dtype=np.float64)
    return cluster_bootstrap(values, np.arange(values.size + 1), seed=seed)


def pair_metrics(cond: np.ndarray, pred: np.ndarray, perm: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Matched, random-pair and paired-difference statistics of conditioning ``cond`` (n, 256) against
    predictions ``pred`` (n, 256); rows of ``pred`` that are NaN count as undefined."""
    out: dict[str, Any] = {}
    pc, pp = target_properties(np.nan_to_num(cond)), target_properties(np.nan_to_num(pred))
    bad = ~np.all(np.isfinite(pred), axis=1)
    for name, fn in (("cosine", cosine_rows), ("pearson", pearson_rows), ("js_divergence", js_divergence_rows)):
        matched, random = fn(cond, pred), fn(cond, pred[perm])
        matched[bad], random[bad[perm]] = np.nan, np.nan
        out[name] = {"matched": _stats(matched, seed), "random": _stats(random, seed), "difference": _stats(matched - random, seed)}
    for name in pc:
        matched, random = np.abs(pc[name] - pp[name]), np.abs(pc[name] - pp[name][perm])
        matched[bad], random[bad[perm]] = np.nan, np.nan
        out[f"{name}_mae"] = {"matched": _stats(matched, seed), "random": _stats(random, seed), "difference": _stats(matched - random, seed)}
    out["undefined"] = int(bad.sum())
    return out


def cdosgen_check(checkpoint: str = TOTAL_DOS_GENERATOR, surrogate: str = "bundled:surrogate-small",
                  store: str | None = None, split: str = "test", limit: int | None = 128, seed: int = 0, w: float = 1.0,
                  batch: int = 64, device: str = "cpu", sampling_steps: int | None = None) -> dict[str, Any]:
    """Run the check (module docstring); returns a JSON-ready dict of the numbers and the settings."""
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.design.sampler import TotalDosSampler
    from dosmatgen.design.total_dos import SurrogateTotalDOS
    from dosmatgen.metrics.derangement import random_derangement
    from dosmatgen.sampling.num_atoms import max_trained_atoms
    from dosmatgen.screen.stages import TargetContext

    t0 = time.perf_counter()
    path = str(store) if store else str(bundled_dataset_path())
    ds = DatasetStore.open(path)
    mem = ds.to_memory()
    sampler = TotalDosSampler(checkpoint, w=w, device=device, sampling_steps=sampling_steps)
    largest = max_trained_atoms(sampler.base.checkpoint.num_atoms_counts)
    idx = ds.split_indices(split)
    idx = idx[mem.num_atoms[idx] <= largest]
    if limit is not None and idx.size > limit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=int(limit), replace=False))
    cond = mem.total_dos[idx].astype(np.float64)
    counts = mem.num_atoms[idx].astype(np.int64)
    crystals: list = []
    for start in range(0, idx.size, batch):
        rows = slice(start, min(start + batch, idx.size))
        crystals.extend(sampler(TargetContext("cdosgen-check", cond[rows]), counts[rows], seed + start))
    t_sample = time.perf_counter() - t0
    predict = SurrogateTotalDOS(surrogate, device=device)
    pred = predict(crystals)
    oracle = predict([mem.crystal(int(i)) for i in idx])
    perm = random_derangement(idx.size, seed)
    return {
        "checkpoint": checkpoint, "surrogate": surrogate, "surrogate_route": predict.route, "store": path, "split": split,
        "structures": int(idx.size), "seed": seed, "w": w,
        "sampling_steps": sampling_steps or sampler.base.checkpoint.diffusion_config.num_steps, "valid_crystals": int(sum(c is not None for c in crystals)),
        "generated": pair_metrics(cond, pred, perm, seed), "oracle": pair_metrics(cond, oracle, perm, seed),
        "seconds_sampling": t_sample, "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dosmatgen.design.cdosgen_check", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=TOTAL_DOS_GENERATOR)
    p.add_argument("--surrogate", default="bundled:surrogate-small")
    p.add_argument("--data", default=None, help="dataset store (default: the bundled one)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=128, help="structures (a seeded random subset; 0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w", type=float, default=1.0)
    p.add_argument("--sampling-steps", type=int, default=None, help="S of the T reverse steps (default: all T)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    result = cdosgen_check(args.checkpoint, args.surrogate, args.data, args.split, args.limit or None, args.seed, args.w,
                           sampling_steps=args.sampling_steps)
    text = json.dumps(result, indent=1, default=float)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    print(format_check(result))
    return 0



def evaluate_total_checkpoint(checkpoint: str, data: str | None, split: str, surrogate: str | None, limit: int | None,
                              seed: int, w: float, device: str, out: Path) -> int:
    """``dosmatgen evaluate`` for a total-DOS denoiser: the CDOSGen check, written to ``out/cdosgen_check.json``."""
    result = cdosgen_check(checkpoint, surrogate or "bundled:surrogate-small", data, split, limit, seed, w, device=device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cdosgen_check.json").write_text(json.dumps(result, indent=1, default=float))
    print(format_check(result))
    print(f"wrote {out / 'cdosgen_check.json'}")
    return 0


def format_check(result: dict[str, Any]) -> str:
    lines = [f"CDOSGen check on {result['structures']} {result['split']} structures ({result['valid_crystals']} valid crystals, "
             f"{result.get('sampling_steps')} sampling steps); mean [95 % interval]"]
    for key in ("cosine", "pearson", "js_divergence", "band_gap_mae", "dos_ef_mae", "n_ef_mae"):
        if key not in result["generated"]:
            continue
        g = result["generated"][key]
        lines.append(f"  {key:13s} matched {g['matched']['mean']:.4f}  random {g['random']['mean']:.4f}  "
                     f"difference {g['difference']['mean']:+.4f} [{g['difference']['lo']:+.4f}, {g['difference']['hi']:+.4f}]  "
                     f"(oracle matched {result['oracle'][key]['matched']['mean']:.4f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
