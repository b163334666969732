"""Maintainer tool (issue 19): the current science acceptance of an evaluation folder written before per-structure
structure match was recorded in metrics.json.

It re-scores structure match per structure from the folder's generated structures (``structures/<mode>_t<t>.zip``,
ids ``<test id>@gen``; a missing id is an invalid output) against the store's structures with the protocol's
matcher, checks that the counts equal the ones the folder reported (a CIF round trip could flip a borderline
match), and prints the acceptance table as JSON and Markdown.

    python tools/acceptance_from_report.py EVAL_DIR [--data STORE.zarr] [--split test] [--out acceptance.json]

``--split NAME`` keeps only the structures that are in that split of the store NOW (e.g. after the split
deduplication moved test twins into train); the paired criteria are computed on those, and the dropped ids are
listed in the output. The informative random-pair comparison keeps the folder's own bootstrap (all its structures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.evaluation.acceptance import acceptance_markdown, science_acceptance
    from dosmatgen.io.structure_files import read_structures
    from dosmatgen.metrics.timed_matcher import TimedStructureMatcher

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dir")
    p.add_argument("--data", default=None, help="the store the evaluation ran on (default: the bundled one)")
    p.add_argument("--out", default=None, help="write the acceptance JSON here")
    p.add_argument("--split", default=None, help="keep only structures in this split of the store (default: all rows)")
    args = p.parse_args(argv)

    folder = Path(args.eval_dir)
    report = json.loads((folder / "metrics.json").read_text())
    store = DatasetStore.open(args.data or bundled_dataset_path())
    index = {rid: i for i, rid in enumerate(store.ids)}
    timeout = report["settings"].get("match_timeout_s")
    mismatched = []
    with TimedStructureMatcher(timeout_s=timeout) as matcher:
        for mode in ("cfg", "none", "uncond"):
            for t, entry in (report["results"].get(mode) or {}).items():
                if entry.get("status") != "ok" or not entry.get("structures_file"):
                    continue
                ids, crystals = read_structures(folder / entry["structures_file"])
                generated = {rid.removesuffix("@gen"): c for rid, c in zip(ids, crystals)}
                for row in entry["per_sample"]:
                    result = matcher.compare(generated.get(row["id"]), store.crystal(index[row["id"]]))
                    row["structure_match"] = result.outcome.value == "match"
                n = sum(r["structure_match"] for r in entry["per_sample"])
                reported = entry["metrics"]["structure_match"]["n_matched"]
                print(f"{mode} t_start {t}: {n} matched on re-scoring, {reported} reported", file=sys.stderr)
                if n != reported:
                    mismatched.append(f"{mode}_t{t}: {n} vs {reported}")
    dropped: list[str] = []
    if args.split:
        keep = {store.ids[i] for i in store.split_indices(args.split)}
        for mode, by_t in report["results"].items():
            for entry in (by_t or {}).values():
                rows = entry.get("per_sample") if isinstance(entry, dict) else None
                if rows:
                    dropped += [r["id"] for r in rows if r["id"] not in keep]
                    entry["per_sample"] = [r for r in rows if r["id"] in keep]
        dropped = sorted(set(dropped))
        print(f"--split {args.split}: dropped {len(dropped)} structures no longer in it: {dropped}", file=sys.stderr)
    acceptance = science_acceptance(report["results"], report["diffusion_steps"], seed=report["settings"]["seed"])
    acceptance["rescored_from"] = str(folder)
    acceptance["rescoring_mismatches"] = mismatched
    if args.split:
        acceptance["restricted_to_split"] = {"split": args.split, "store_split_sizes": store.split_sizes(), "dropped_ids": dropped}
    if args.out:
        Path(args.out).write_text(json.dumps(acceptance, indent=1) + "\n")
    print("\n".join(acceptance_markdown(acceptance)))
    if mismatched:
        print(f"re-scored match counts differ from the reported ones: {mismatched}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
