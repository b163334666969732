#!/usr/bin/env python
"""GPAW DOS engine: wall seconds per structure with the dos-gpaw-v1 settings (issue 5 benchmark, issue 2 engine).

Runs each structure through ``compute_dos_dataset`` (one worker subprocess each, so the figure includes the
process start and the GPAW import, as a batch sees it) with ``--threads`` BLAS/OpenMP threads, and prints a
table of the DFT wall seconds (the ``seconds`` stored in the record: GPAW setup + SCF + DOS) and the total wall
seconds per structure (worker start to record written).

Structures: Si2 (diamond), CaO (rocksalt) and AlGa (B2) as in tests/data/gpaw_reference, Au3Ni (L1_2,
a = 4.02 Å, the demo target's structure), SrTiO3 (cubic perovskite, a = 3.905 Å), rutile IrO2 (a = 4.50, c = 3.16,
u = 0.308; the other demo target) and Si8 (conventional diamond cell).

Pause background DFT before running this (``kill -STOP``/``-CONT`` on its process group) and report the load.

    python benchmarks/bench_gpaw_dos.py [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from dosmatgen.crystal import Crystal


def structures() -> dict[str, Crystal]:
    fcc = lambda a: 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)  # noqa: E731
    u = 0.308
    diamond8 = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.25, 0.25, 0.25], [0.25, 0.75, 0.75],
                [0.75, 0.25, 0.75], [0.75, 0.75, 0.25]]  # fmt: skip
    return {
        "Si2": Crystal([14, 14], [[0, 0, 0], [0.25] * 3], fcc(5.43)),
        "CaO": Crystal([20, 8], [[0, 0, 0], [0.5] * 3], fcc(4.83)),
        "AlGa": Crystal([13, 31], [[0, 0, 0], [0.5] * 3], 2.98 * np.eye(3)),
        "Au3Ni": Crystal([28, 79, 79, 79], [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], 4.02 * np.eye(3)),
        "SrTiO3": Crystal([22, 38, 8, 8, 8], [[0, 0, 0], [0.5] * 3, [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]], 3.905 * np.eye(3)),
        "IrO2": Crystal([77, 77, 8, 8, 8, 8], [[0, 0, 0], [0.5] * 3, [u, u, 0], [1 - u, 1 - u, 0], [0.5 + u, 0.5 - u, 0.5],
                                               [0.5 - u, 0.5 + u, 0.5]], np.diag([4.50, 4.50, 3.16])),  # fmt: skip
        "Si8": Crystal([14] * 8, diamond8, 5.43 * np.eye(3)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="*", help="subset of structure names")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    from dosmatgen.dft.compute import compute_dos_dataset, record_path
    from dosmatgen.dft.engine import get_engine
    from dosmatgen.dft.record_file import read_record_npz

    engine = get_engine("gpaw")
    rows = []
    todo = {k: v for k, v in structures().items() if not args.only or k in args.only}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for name, crystal in todo.items():
            t0 = time.perf_counter()
            s = compute_dos_dataset([(name, crystal)], tmp, engine, 1800, threads=args.threads, progress=False)
            wall = time.perf_counter() - t0
            if not s.done:
                rows.append({"name": name, "error": s.failed[0]["error"]})
                continue
            rec = read_record_npz(record_path(tmp, name))
            rows.append({"name": name, "atoms": crystal.num_atoms, "n_ibz_kpoints": rec.metadata["n_ibz_kpoints"],
                         "dft_seconds": round(rec.metadata["seconds"], 2), "wall_seconds": round(wall, 2)})  # fmt: skip
    print(f"threads={args.threads}  load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f}  ({os.cpu_count()} CPUs)")
    print(f"{'structure':10s} {'atoms':>5s} {'IBZ k':>6s} {'DFT s':>7s} {'wall s':>7s}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:10s} failed: {r['error']}")
        else:
            print(f"{r['name']:10s} {r['atoms']:5d} {r['n_ibz_kpoints']:6d} {r['dft_seconds']:7.1f} {r['wall_seconds']:7.1f}")
    ok = [r["dft_seconds"] for r in rows if "dft_seconds" in r]
    if ok:
        print(f"median DFT seconds per structure: {np.median(ok):.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "load_before": load_before, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
