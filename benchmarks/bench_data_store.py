"""Benchmark: build a dataset store from a GPAW dataset and load it for training.

    python benchmarks/bench_data_store.py PATH/TO/dos-gpaw-v1 [--repeat 3]

Prints the build time (read + validate + featurize + stage + consolidate), the store size on disk, and the
time to open the store and load the train split into a CrystalDOSDataset. Numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dosmatgen.data.build import BuildOptions, build_dataset
from dosmatgen.data.store import DatasetStore
from dosmatgen.data.torch_dataset import CrystalDOSDataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="dos-gpaw-v1 folder or dataset.npz")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    builds, loads = [], []
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bench.zarr"
            t0 = time.perf_counter()
            summary = build_dataset("gpaw", [args.input], out, BuildOptions(progress=False))
            builds.append(time.perf_counter() - t0)
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
            nfiles = sum(1 for p in out.rglob("*") if p.is_file())
            t0 = time.perf_counter()
            ds = CrystalDOSDataset(DatasetStore.open(out), split="train")
            loads.append(time.perf_counter() - t0)
    print(f"structures {summary.num_stored}, sites {summary.num_sites}, skipped {len(summary.skipped)}")
    print(f"store size {size} bytes ({size / 2**20:.2f} MiB) in {nfiles} files")
    print(f"build seconds: median {statistics.median(builds):.2f} (runs: {', '.join(f'{b:.2f}' for b in builds)})")
    print(f"open + load train split ({len(ds)} structures) seconds: median {statistics.median(loads):.3f}")


if __name__ == "__main__":
    main()
