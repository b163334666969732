"""Share of candidates carrying each filter reason, per sampled atom count, for every target of a screen's run store.

    python benchmarks/reasons_by_size.py RUN_DIR_OR_STORE [--json OUT]

Reads only ``sample/num_atoms`` and ``relax/flags``; prints a Markdown table per target."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dosmatgen.runstore import Flag, RunStore


def reasons_by_size(num_atoms: np.ndarray, flags: np.ndarray) -> dict[int, dict[str, float]]:
    """{atom count: {"n": count, "passed": share, reason: share}} with shares in percent."""
    out: dict[int, dict[str, float]] = {}
    for n in sorted(set(int(k) for k in num_atoms if k > 0)):
        f = flags[num_atoms == n]
        row: dict[str, float] = {"n": float(f.size), "passed": round(100.0 * float(np.mean(f == 0)), 2)}
        for flag in Flag:
            if flag.value and np.any(f & flag.value):
                row[flag.name.lower()] = round(100.0 * float(np.mean((f & flag.value) > 0)), 2)
        out[n] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a screen's run directory or its store.zarr")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    store = RunStore.open(args.run.parent if args.run.name == "store.zarr" else args.run, mode="r")
    result = {}
    for target in store.targets():
        table = reasons_by_size(target.column("sample/num_atoms"), target.column("relax/flags"))
        result[target.id] = table
        names = sorted({k for row in table.values() for k in row} - {"n", "passed"})
        print(f"\n{target.id}\n\n| atoms | n | passed % | " + " | ".join(f"{k} %" for k in names) + " |")
        print("|---" * (3 + len(names)) + "|")
        for n, row in table.items():
            cells = " | ".join(f"{row.get(k, 0.0):.1f}" for k in names)
            print(f"| {n} | {int(row['n'])} | {row['passed']:.1f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
