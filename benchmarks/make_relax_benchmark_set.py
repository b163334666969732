"""Write benchmarks/data/relax64.extxyz: 64 perturbed crystals of 4-8 atoms for benchmarks/relax_batched.py.

Source: the dos-gpaw-v1 dataset (dataset.npz; path given on the command line). Picks, with a fixed seed,
structures with 4-8 atoms (all 6-8 atom ones, then 4- and 5-atom ones), rattles the positions by 0.05 Å
(Gaussian) and strains the cell by a random symmetric strain of 2 % (Gaussian), so every structure needs
real relaxation steps. Run once by a developer; the output file is committed with a README.

    python benchmarks/make_relax_benchmark_set.py /path/to/dataset.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.io.structure_files import write_extxyz

N_STRUCTURES = 64
SEED = 20260521


def main(npz_path: str, out: str = str(Path(__file__).parent / "data" / "relax64.extxyz")) -> None:
    d = np.load(npz_path)
    rng = np.random.default_rng(SEED)
    n_atoms = d["num_atoms"]
    big = np.flatnonzero((n_atoms >= 6) & (n_atoms <= 8))
    small = np.flatnonzero((n_atoms >= 4) & (n_atoms <= 5))
    chosen = list(big) + list(rng.choice(small, N_STRUCTURES - len(big), replace=False))
    crystals, ids = [], []
    for i in chosen:
        lo, hi = d["offsets"][i], d["offsets"][i + 1]
        c = Crystal(d["atomic_numbers"][lo:hi].astype(int), d["frac_coords"][lo:hi], d["lattice"][i])
        eps = rng.normal(0, 0.02, (3, 3))
        strain = np.eye(3) + 0.5 * (eps + eps.T)
        lattice = c.lattice @ strain
        cart = c.frac_coords @ lattice + rng.normal(0, 0.05, (c.num_atoms, 3))
        frac = np.linalg.solve(lattice.T, cart.T).T
        crystals.append(Crystal(c.atomic_numbers, frac, lattice))
        ids.append(str(d["ids"][i]))
    write_extxyz(out, crystals, ids)
    print(f"wrote {len(crystals)} structures to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
