"""Energy above the convex hull with user-supplied competing phases (pymatgen ``PhaseDiagram``).

All energies must come from the same force field: the candidate's, the competing phases' and the
elemental references (which are added to the phase diagram so that every chemical system is closed).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.elements import symbol
from dosmatgen.relax.references import ElementalReferences


def _composition(crystal: Crystal):
    return crystal.to_pymatgen().composition


def energy_above_hull(
    crystal: Crystal,
    total_energy: float,
    competing: Sequence[tuple[Crystal, float]],
    references: ElementalReferences | Mapping[int, float],
) -> float:
    """E above hull in eV/atom (>= 0; 0 = on the hull) of ``crystal`` with ``total_energy`` (eV).

    ``competing``: (crystal, total energy in eV) of known phases in the same chemical space.
    """
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    comp = _composition(crystal)
    elements = {int(el.Z) for el in comp.elements}
    for c, _ in competing:
        elements |= {int(z) for z in c.atomic_numbers}
    if isinstance(references, ElementalReferences):
        references.ensure(elements)
        mu = references.known
    else:
        mu = {int(k): float(v) for k, v in references.items()}
    entries = [PDEntry(Composition({symbol(z): 1}), mu[z], name=f"ref-{symbol(z)}") for z in sorted(elements)]
    entries += [PDEntry(_composition(c), float(e), name=f"competing-{i}") for i, (c, e) in enumerate(competing)]
    candidate = PDEntry(comp, float(total_energy), name="candidate")
    diagram = PhaseDiagram(entries + [candidate])
    return float(diagram.get_e_above_hull(candidate, allow_negative=False))
