"""CHGNet's own forward vs the factored one (dosmatgen.relax.chgnet_factored): time per energy + forces + stress call.

Both run on the same batch of the relax benchmark set (``--start``/``--n`` structures), through the backend's own
evaluation (``CHGNetMLFF._forward``: the same batched graph and the same single reverse pass), interleaved ``--repeats`` times for ``--seconds`` each, torch on one thread.
Prints the per-call times, their medians, the ratio, and the largest differences of energy, forces and stress.

    OPENBLAS_NUM_THREADS=1 python benchmarks/chgnet_forward.py [--start 8] [--n 26] [--repeats 6] [--json OUT]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dosmatgen.io.structure_files import read_structures  # noqa: E402
from dosmatgen.relax.mlff_chgnet import CHGNetMLFF  # noqa: E402

DATA = Path(__file__).parent / "data" / "relax64.extxyz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--start", type=int, default=8)
    ap.add_argument("--n", type=int, default=26, help="structures in the batch (26: one shard of the local screen)")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    _, crystals = read_structures(args.data)
    batch = crystals[args.start: args.start + args.n]
    mlff = CHGNetMLFF()
    graphs, errors = mlff._graphs([c.atomic_numbers for c in batch], [c.cart_coords for c in batch],
                                  [c.lattice for c in batch])
    if errors:
        raise SystemExit(f"graph construction failed: {errors}")
    # the production path (CHGNetMLFF._forward: assemble, energy, one reverse pass) with either forward, same weights
    backends = {"chgnet": CHGNetMLFF(model=mlff.model, forward_code="chgnet"), "factored": mlff}

    def call(name):
        return backends[name]._forward(graphs)  # energies (B,), forces per structure, stresses (B, 3, 3)

    ref, new = call("chgnet"), call("factored")
    n_atoms = np.array([g.atomic_number.shape[0] for g in graphs])
    angles = sum(int(g.bond_graph.shape[0]) if g.bond_graph.dim() == 2 else 0 for g in graphs)
    times = {name: [] for name in backends}
    for _ in range(args.repeats):
        for name in backends:
            t0, k = time.perf_counter(), 0
            while time.perf_counter() - t0 < args.seconds:
                call(name)
                k += 1
            times[name].append((time.perf_counter() - t0) / k * 1e3)
    med = {name: statistics.median(v) for name, v in times.items()}
    out = {
        "command": "benchmarks/chgnet_forward.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "json"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_end": os.getloadavg()},
        "batch": {"structures": len(batch), "atoms": int(n_atoms.sum()), "angles": angles},
        "ms_per_call": {name: [round(x, 1) for x in v] for name, v in times.items()},
        "median_ms_per_call": {name: round(v, 1) for name, v in med.items()},
        "speedup_factored": round(med["chgnet"] / med["factored"], 3),
        "max_abs_diff": {
            "energy_eV_per_atom": float((np.abs(ref[0] - new[0]) / n_atoms).max()),
            "force_eV_per_A": max(float(np.abs(a - b).max()) for a, b in zip(ref[1], new[1], strict=True)),
            "stress_eV_per_A3": float(np.abs(ref[2] - new[2]).max()),
        },
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
