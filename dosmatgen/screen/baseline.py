"""Small, real reference implementations of the stage contracts of :mod:`dosmatgen.screen.stages`.

They are baselines and the stand-ins used by CI and the cluster tests, not the paper's method:

* :func:`load_random_sampler`: random structures (random elements from a list, uniform fractional
  coordinates, a randomly strained cubic cell of a given volume per atom), rejecting overlapping atoms.
  Ignores the target DOS: it is the "random search" baseline a conditioned model must beat.
* :func:`load_emt_relaxer`: ASE's EMT potential (Al, Ni, Cu, Pd, Ag, Pt, Au) with FIRE on a
  ``UnitCellFilter`` (positions and cell; FrechetCellFilter costs ~0.15 s per step in scipy here), formation energy against relaxed fcc elements.
* :func:`load_formation_energy_scorer`: ranks by formation energy (eV/atom, lower is better).
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.elements import atomic_number
from dosmatgen.errors import InvalidRecordError
from dosmatgen.screen.stages import RelaxOutcome, TargetContext

EMT_METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")


class RandomStructureSampler:
    """Random crystals: ``elements`` drawn uniformly, volume ``volume_per_atom`` Å^3/atom, min distance ``min_distance`` Å."""

    def __init__(self, elements: Sequence[str], volume_per_atom: float = 15.0, min_distance: float = 1.8,
                 strain: float = 0.1, max_tries: int = 200):
        if not elements:
            raise InvalidRecordError("random sampler: 'elements' is empty")
        self.z = np.array([atomic_number(e) for e in elements], dtype=np.int64)
        self.volume_per_atom = float(volume_per_atom)
        self.min_distance = float(min_distance)
        self.strain = float(strain)
        self.max_tries = int(max_tries)

    def _one(self, n: int, rng: np.random.Generator) -> Crystal | None:
        """Random sequential addition: each atom is redrawn until it keeps ``min_distance`` from the others."""
        from pymatgen.core import Lattice

        a = (self.volume_per_atom * n) ** (1.0 / 3.0)
        for _ in range(10):
            eps = rng.uniform(-self.strain, self.strain, size=(3, 3))
            lattice = Lattice(a * (np.eye(3) + 0.5 * (eps + eps.T)))
            if min(lattice.abc) < self.min_distance:
                continue
            frac = np.empty((0, 3))
            for _ in range(n):
                for _ in range(self.max_tries):
                    x = rng.random((1, 3))
                    if frac.shape[0] == 0 or lattice.get_all_distances(x, frac).min() >= self.min_distance:
                        frac = np.vstack([frac, x])
                        break
                else:
                    break
            if frac.shape[0] == n:
                return Crystal(rng.choice(self.z, size=n), frac, lattice.matrix)
        return None

    def __call__(self, target: TargetContext, num_atoms: np.ndarray, seed: int) -> list[Crystal | None]:
        rng = np.random.default_rng(seed)
        return [self._one(int(n), rng) for n in num_atoms]


def load_random_sampler(elements: Sequence[str] = EMT_METALS, volume_per_atom: float = 15.0,
                        min_distance: float = 1.8, device: str = "cpu") -> RandomStructureSampler:
    """Loader of the random baseline (``device`` is accepted for the loader contract and unused)."""
    return RandomStructureSampler(elements, volume_per_atom, min_distance)


class EMTRelaxer:
    """Relax positions and cell with ASE EMT + FIRE on a UnitCellFilter; energies in eV/atom."""

    def __init__(self, fmax: float = 0.05, steps: int = 200):
        self.fmax = float(fmax)
        self.steps = int(steps)

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def reference_energy(symbol: str) -> float:
        """EMT energy per atom (eV) of the relaxed fcc element."""
        from ase.build import bulk
        from ase.calculators.emt import EMT
        from ase.filters import UnitCellFilter
        from ase.optimize import FIRE

        atoms = bulk(symbol, "fcc")
        atoms.calc = EMT()
        FIRE(UnitCellFilter(atoms), logfile=None).run(fmax=0.01, steps=300)
        return float(atoms.get_potential_energy() / len(atoms))

    def relax_one(self, crystal: Crystal) -> RelaxOutcome:
        from ase.calculators.emt import EMT
        from ase.filters import UnitCellFilter
        from ase.optimize import FIRE

        try:
            bad = [s for s in crystal.symbols if s not in EMT_METALS]
            if bad:
                raise InvalidRecordError(f"EMT has no parameters for {sorted(set(bad))}")
            atoms = crystal.to_ase()
            atoms.calc = EMT()
            n = len(atoms)
            e0 = float(atoms.get_potential_energy()) / n
            opt = FIRE(UnitCellFilter(atoms), logfile=None)
            converged = bool(opt.run(fmax=self.fmax, steps=self.steps))
            e1 = float(atoms.get_potential_energy()) / n
            ref = float(np.mean([self.reference_energy(s) for s in crystal.symbols]))
            return RelaxOutcome(Crystal.from_ase(atoms), e0, e1, e1 - ref, int(opt.nsteps), converged)
        except Exception as exc:  # one structure's failure is recorded, never fatal for the shard
            return RelaxOutcome(None, error=f"{type(exc).__name__}: {exc}")

    def __call__(self, crystals: list[Crystal]) -> list[RelaxOutcome]:
        return [self.relax_one(c) for c in crystals]


def load_emt_relaxer(fmax: float = 0.05, steps: int = 200) -> EMTRelaxer:
    return EMTRelaxer(fmax, steps)


def formation_energy_scorer(crystals: list[Crystal], target: TargetContext, formation_energy: np.ndarray) -> np.ndarray:
    """Score = formation energy (eV/atom); lower is better."""
    return np.asarray(formation_energy, dtype=np.float64)


def load_formation_energy_scorer() -> "type[formation_energy_scorer]":
    return formation_energy_scorer  # type: ignore[return-value]
