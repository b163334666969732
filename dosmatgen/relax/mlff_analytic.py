"""Analytic potentials behind the :class:`~dosmatgen.relax.mlff.MLFF` interface, for fast tests.

* :class:`EMTMLFF` - ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt), evaluated structure by
  structure inside one :meth:`compute` call (the call is still one call per optimizer step).
* :class:`LennardJonesMLFF` - a Lennard-Jones pair potential for every element, vectorised over all pairs
  of all structures of the batch in numpy. The pair minimum sits at the sum of the two covalent radii
  (``sigma_ij = (r_i + r_j) / 2^(1/6)``), so real compositions relax to sensible volumes. The energy is
  shifted to zero at the cutoff ``rc = cutoff_sigma * sigma_ij``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dosmatgen.relax.mlff import MLFF, MLFFOutput

#: Elements ASE's EMT has metal parameters for.
EMT_ELEMENTS = frozenset({13, 28, 29, 46, 47, 78, 79})


class EMTMLFF(MLFF):
    """ASE EMT. Energies in eV, forces eV/Å, stress eV/Å^3 (ASE convention)."""

    name = "emt"

    def __init__(self) -> None:
        import ase

        self.version = f"ase-{ase.__version__}"
        self.supported_elements = EMT_ELEMENTS

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        from ase import Atoms
        from ase.calculators.emt import EMT
        from ase.stress import voigt_6_to_full_3x3_stress

        energy, forces, stress = [], [], []
        for z, pos, cell in zip(numbers, positions, cells, strict=True):
            atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
            atoms.calc = EMT()
            energy.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
            stress.append(voigt_6_to_full_3x3_stress(atoms.get_stress()))
        return MLFFOutput(np.asarray(energy, float), forces, np.asarray(stress, float).reshape(-1, 3, 3))


class LennardJonesMLFF(MLFF):
    """Vectorised Lennard-Jones over the whole batch.

    Args:
        epsilon: well depth, eV.
        cutoff_sigma: cutoff in units of sigma_ij.
    """

    name = "lj"

    def __init__(self, epsilon: float = 0.2, cutoff_sigma: float = 2.5) -> None:
        from ase.data import covalent_radii

        self.epsilon = float(epsilon)
        self.cutoff_sigma = float(cutoff_sigma)
        self._radii = np.asarray(covalent_radii, dtype=float)
        self.version = f"lj-eps{self.epsilon:g}-rc{self.cutoff_sigma:g}"
        self.supported_elements = frozenset(range(1, 101))

    def compute(self, numbers: Sequence[np.ndarray], positions, cells) -> MLFFOutput:
        from ase.neighborlist import primitive_neighbor_list

        b = len(numbers)
        pair_i, pair_j, pair_vec, owner = [], [], [], []
        offset = 0
        for k, (z, pos, cell) in enumerate(zip(numbers, positions, cells, strict=True)):
            z = np.asarray(z)
            rmax = 2 * self._radii[z].max() / 2 ** (1 / 6) * self.cutoff_sigma
            i, j, d_vec = primitive_neighbor_list("ijD", [True] * 3, np.asarray(cell), np.asarray(pos), rmax)
            pair_i.append(i + offset)
            pair_j.append(j + offset)
            pair_vec.append(d_vec)
            owner.append(np.full(len(i), k))
            offset += len(z)
        z_all = np.concatenate([np.asarray(z) for z in numbers]).astype(int)
        i = np.concatenate(pair_i).astype(int)
        j = np.concatenate(pair_j).astype(int)
        d_vec = np.concatenate(pair_vec).reshape(-1, 3)
        own = np.concatenate(owner).astype(int)
        r = np.linalg.norm(d_vec, axis=1)
        sigma = (self._radii[z_all[i]] + self._radii[z_all[j]]) / 2 ** (1 / 6)
        rc = self.cutoff_sigma * sigma
        inside = r < rc
        i, j, d_vec, own, r, sigma, rc = (a[inside] for a in (i, j, d_vec, own, r, sigma, rc))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            sr6 = (sigma / r) ** 6
            src6 = (1.0 / self.cutoff_sigma) ** 6
            e_pair = 4 * self.epsilon * ((sr6**2 - sr6) - (src6**2 - src6))
            # dE/dr for one ordered pair; each unordered pair appears twice (i->j and j->i): factor 1/2
            de_dr = 4 * self.epsilon * (-12 * sr6**2 + 6 * sr6) / r
            fvec = (0.5 * de_dr / r)[:, None] * d_vec  # gradient of E wrt position of j from this pair
        n_total = len(z_all)
        energy = 0.5 * np.bincount(own, weights=e_pair, minlength=b)
        grad = np.zeros((n_total, 3))
        np.add.at(grad, j, fvec)
        np.add.at(grad, i, -fvec)
        virial = np.zeros((b, 3, 3))  # sum over pairs of d_vec (x) dE/dd_vec
        np.add.at(virial, own, d_vec[:, :, None] * fvec[:, None, :])
        volumes = np.array([abs(np.linalg.det(np.asarray(c))) for c in cells])
        stress = virial / volumes[:, None, None]
        sizes = np.cumsum([0] + [len(z) for z in numbers])
        forces = [-grad[sizes[k] : sizes[k + 1]] for k in range(b)]
        return MLFFOutput(energy, forces, stress)
