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


#: Which test structures the check conditions on (``--subset``): all, or the thermoelectric-like ones (paper
#: Table 5: DFT total DOS with Algorithm-1 band gap in [0.1, 1.0] eV and DOS(E_F) = 0).
SUBSETS = ("all", "thermoelectric")


def _stats(values: np.ndarray, seed: int, repeats: int = 1) -> dict[str, Any]:
    from dosmatgen.evaluation.bootstrap import cluster_bootstrap

    values = np.asarray(values, dtype=np.float64)
    return cluster_bootstrap(values, np.arange(0, values.size + 1, repeats), seed=seed)


def pair_metrics(cond: np.ndarray, pred: np.ndarray, perm: np.ndarray, seed: int = 0, repeats: int = 1,
                 te_filter: bool = False) -> dict[str, Any]:
    """Matched, random-pair and paired-difference statistics of conditioning ``cond`` (n, 256) against
    predictions ``pred`` (n, 256); rows of ``pred`` that are NaN count as undefined. ``repeats``: consecutive rows
    share one conditioning structure (the bootstrap resamples structures). ``te_filter``: also the pass rate of the
    paper's thermoelectric filter with the conditioning DOS as the reference (Table 5)."""
    from dosmatgen.dos.properties import thermoelectric_mask

    out: dict[str, Any] = {}
    pc, pp = target_properties(np.nan_to_num(cond)), target_properties(np.nan_to_num(pred))
    bad = ~np.all(np.isfinite(pred), axis=1)
    metrics = [("cosine", cosine_rows), ("pearson", pearson_rows), ("js_divergence", js_divergence_rows)]
    if te_filter:
        metrics.append(("te_filter_pass", lambda c, p: thermoelectric_mask(np.nan_to_num(p), c).astype(np.float64)))
    for name, fn in metrics:
        matched, random = fn(cond, pred), fn(cond, pred[perm])
        matched[bad], random[bad[perm]] = np.nan, np.nan
        out[name] = {"matched": _stats(matched, seed, repeats), "random": _stats(random, seed, repeats),
                     "difference": _stats(matched - random, seed, repeats)}
    for name in pc:
        matched, random = np.abs(pc[name] - pp[name]), np.abs(pc[name] - pp[name][perm])
        matched[bad], random[bad[perm]] = np.nan, np.nan
        out[f"{name}_mae"] = {"matched": _stats(matched, seed, repeats), "random": _stats(random, seed, repeats),
                              "difference": _stats(matched - random, seed, repeats)}
    out["undefined"] = int(bad.sum())
    return out


def select_subset(total_dos: np.ndarray, subset: str) -> np.ndarray:
    """Boolean mask of the rows of ``total_dos`` (n, 256) in ``subset`` (:data:`SUBSETS`)."""
    if subset == "all":
        return np.ones(total_dos.shape[0], dtype=bool)
    if subset == "thermoelectric":
        from dosmatgen.dos.properties import TE_GAP_RANGE_EV, ZERO_DOS_THRESHOLD

        p = target_properties(total_dos)
        lo, hi = TE_GAP_RANGE_EV
        return (p["band_gap"] >= lo) & (p["band_gap"] <= hi) & (p["dos_ef"] <= ZERO_DOS_THRESHOLD)
    raise ValueError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")


def repeated_derangement(n_structures: int, repeats: int, seed: int) -> np.ndarray:
    """Row permutation for ``repeats`` consecutive rows per structure: row (s, j) -> (sigma(s), j), sigma a
    seeded derangement, so no row is paired with a crystal generated for its own structure."""
    from dosmatgen.metrics.derangement import random_derangement

    sigma = random_derangement(n_structures, seed)
    return (sigma[:, None] * repeats + np.arange(repeats)[None, :]).reshape(-1)


def cdosgen_check(checkpoint: str = TOTAL_DOS_GENERATOR, surrogate: str = "bundled:surrogate-small",
                  store: str | None = None, split: str = "test", limit: int | None = 128, seed: int = 0, w: float = 1.0,
                  batch: int = 64, device: str = "cpu", sampling_steps: int | None = None, subset: str = "all",
                  per_structure: int = 1) -> dict[str, Any]:
    """Run the check (module docstring); returns a JSON-ready dict of the numbers and the settings."""
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.design.sampler import TotalDosSampler
    from dosmatgen.design.total_dos import SurrogateTotalDOS
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
    idx = idx[select_subset(mem.total_dos[idx].astype(np.float64), subset)]
    if idx.size < 2:
        raise ValueError(f"the {subset!r} subset of the {split} split has {idx.size} structures; the check needs 2")
    if limit is not None and idx.size > limit:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=int(limit), replace=False))
    reps = max(int(per_structure), 1)
    cond = np.repeat(mem.total_dos[idx].astype(np.float64), reps, axis=0)
    counts = np.repeat(mem.num_atoms[idx].astype(np.int64), reps)
    crystals: list = []
    for start in range(0, cond.shape[0], batch):
        rows = slice(start, min(start + batch, cond.shape[0]))
        crystals.extend(sampler(TargetContext("cdosgen-check", cond[rows]), counts[rows], seed + start))
    t_sample = time.perf_counter() - t0
    predict = SurrogateTotalDOS(surrogate, device=device)
    pred = predict(crystals)
    oracle = np.repeat(predict([mem.crystal(int(i)) for i in idx]), reps, axis=0)
    perm = repeated_derangement(idx.size, reps, seed)
    te = subset == "thermoelectric"
    return {
        "checkpoint": checkpoint, "surrogate": surrogate, "surrogate_route": predict.route, "store": path, "split": split,
        "subset": subset, "structures": int(idx.size), "per_structure": reps, "seed": seed, "w": w,
        "sampling_steps": sampling_steps or sampler.base.checkpoint.diffusion_config.num_steps, "valid_crystals": int(sum(c is not None for c in crystals)),
        "generated": pair_metrics(cond, pred, perm, seed, reps, te), "oracle": pair_metrics(cond, oracle, perm, seed, reps, te),
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
    p.add_argument("--subset", choices=SUBSETS, default="all",
                   help="thermoelectric: only structures with band gap in [0.1, 1.0] eV and DOS(E_F) = 0 (paper Table 5), "
                        "with the thermoelectric-filter pass rate")
    p.add_argument("--per-structure", type=int, default=1, help="crystals generated per conditioning structure")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    if args.per_structure < 1:
        p.error("--per-structure must be >= 1")
    result = cdosgen_check(args.checkpoint, args.surrogate, args.data, args.split, args.limit or None, args.seed, args.w,
                           sampling_steps=args.sampling_steps, subset=args.subset, per_structure=args.per_structure)
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
    lines = [f"CDOSGen check on {result['structures']} {result['split']} structures (subset {result.get('subset', 'all')}, "
             f"{result.get('per_structure', 1)} per structure, {result['valid_crystals']} valid crystals, "
             f"{result.get('sampling_steps')} sampling steps); mean [95 % interval]"]
    for key in ("cosine", "pearson", "js_divergence", "band_gap_mae", "dos_ef_mae", "n_ef_mae", "te_filter_pass"):
        if key not in result["generated"]:
            continue
        g = result["generated"][key]
        lines.append(f"  {key:13s} matched {g['matched']['mean']:.4f}  random {g['random']['mean']:.4f}  "
                     f"difference {g['difference']['mean']:+.4f} [{g['difference']['lo']:+.4f}, {g['difference']['hi']:+.4f}]  "
                     f"(oracle matched {result['oracle'][key]['matched']['mean']:.4f})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
