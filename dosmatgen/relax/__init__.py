"""Relaxation and stability: MLFF backends, batched FIRE + Frechet cell filter, elemental references,
formation energies and energy above hull.

* :mod:`.mlff` - the :class:`MLFF` interface and :func:`get_mlff` (``chgnet``, ``orb``, ``emt``, ``lj``)
* :mod:`.batched_fire` - :class:`BatchedRelaxer`: one MLFF call per optimizer step for the whole batch
* :mod:`.ase_reference` - ASE FIRE + FrechetCellFilter one at a time (the reference path)
* :mod:`.references`, :mod:`.formation_energy`, :mod:`.hull` - formation energies and stability
"""

from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings, relax_batched
from dosmatgen.relax.mlff import MLFF, MLFFOutput, available_mlffs, get_mlff
from dosmatgen.relax.result import RelaxResult

__all__ = ["BatchedRelaxer", "MLFF", "MLFFOutput", "RelaxResult", "RelaxSettings", "available_mlffs", "get_mlff", "relax_batched"]
