"""Small structures and fake force fields for the relaxation tests."""

from __future__ import annotations

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.relax.mlff import MLFF, MLFFOutput
from dosmatgen.relax.mlff_analytic import LennardJonesMLFF


def rattled_fcc(symbol: str, a: float, seed: int, rattle: float = 0.05, strain: float = 0.02) -> Crystal:
    """Conventional 4-atom fcc cell, positions rattled (Å) and cell strained (random symmetric strain)."""
    from ase.build import bulk

    atoms = bulk(symbol, "fcc", a=a, cubic=True)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0, rattle, atoms.positions.shape)
    eps = rng.normal(0, strain, (3, 3))
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    return Crystal.from_ase(atoms)


def lj_cluster_cell(z: int, seed: int) -> Crystal:
    """A 4-atom rattled fcc-like cell of element ``z`` scaled to its LJ minimum distance."""
    from ase.data import covalent_radii

    d = 2 * covalent_radii[z]
    c = rattled_fcc("Cu", d * np.sqrt(2) * 1.05, seed)
    return Crystal(np.full(4, z), c.frac_coords, c.lattice)


class CountingMLFF(MLFF):
    """Wraps an MLFF and records every call: the number of structures and their first atomic numbers."""

    def __init__(self, inner: MLFF | None = None) -> None:
        self.inner = inner or LennardJonesMLFF()
        self.name, self.version = "counting", self.inner.version
        self.supported_elements = self.inner.supported_elements
        self.calls: list[list[int]] = []

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        self.calls.append([int(z[0]) for z in numbers])
        return self.inner.compute(numbers, positions, cells)


class PoisonedMLFF(CountingMLFF):
    """LJ, except that structures containing ``nan_z`` get NaN energies and ``raise_z`` makes the call raise."""

    def __init__(self, nan_z: int | None = None, raise_z: int | None = None) -> None:
        super().__init__()
        self.nan_z, self.raise_z = nan_z, raise_z

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        if self.raise_z is not None and any(self.raise_z in np.asarray(z) for z in numbers):
            self.calls.append([int(z[0]) for z in numbers])
            raise RuntimeError("model blew up on this batch")
        out = super().compute(numbers, positions, cells)
        energy = out.energy.copy()
        for i, z in enumerate(numbers):
            if self.nan_z is not None and self.nan_z in np.asarray(z):
                energy[i] = np.nan
        return MLFFOutput(energy, out.forces, out.stress, out.errors)


class ConstantPullMLFF(MLFF):
    """Pulls atom 0 towards atom 1 with a constant force (eV/Å) and pushes the cell with a constant stress.

    ``pull`` > 0 collapses the two atoms; ``stress`` < 0 (eV/Å^3, ASE sign) makes the cell expand forever.
    """

    name, version = "pull", "1"
    supported_elements = frozenset(range(1, 101))

    def __init__(self, pull: float = 0.0, stress: float = 0.0) -> None:
        self.pull, self.s = pull, stress

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        forces, energy = [], []
        for pos in positions:
            f = np.zeros_like(pos)
            d = pos[1] - pos[0]
            u = d / np.linalg.norm(d)
            f[0], f[1] = self.pull * u, -self.pull * u
            forces.append(f)
            energy.append(self.pull * float(np.linalg.norm(d)))
        stress = np.stack([np.eye(3) * self.s for _ in positions])
        return MLFFOutput(np.asarray(energy), forces, stress)
