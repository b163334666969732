"""An ASE ``Calculator`` that evaluates one structure with any :class:`~dosmatgen.relax.mlff.MLFF`."""

from __future__ import annotations

from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from dosmatgen.relax.mlff import MLFF


class MLFFCalculator(Calculator):
    """energy (eV), free_energy, forces (eV/Å) and stress (Voigt, eV/Å^3) from ``mlff`` for one Atoms.

    Each ``calculate`` is one :meth:`MLFF.compute` call with a batch of one structure.
    A structure the backend cannot evaluate raises ``RuntimeError`` with the backend's reason.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, mlff: MLFF, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mlff = mlff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        out = self.mlff.compute([self.atoms.numbers], [self.atoms.positions], [self.atoms.cell[:]])
        if out.errors:
            raise RuntimeError(out.errors[0])
        energy = float(out.energy[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces[0],
            "stress": full_3x3_to_voigt_6_stress(out.stress[0]),
        }
