"""Test helper: load the pymatgen CompleteDos fixtures in tests/data/fixtures and turn them into DOSRecords.

Deliberately tiny and independent of dosmatgen.data.sources (the product reader is tested on its own).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pymatgen.electronic_structure.core import OrbitalType
from pymatgen.electronic_structure.dos import CompleteDos

from dosmatgen.crystal import Crystal
from dosmatgen.dos.record import DOSRecord

FIXTURES = Path(__file__).parent / "data" / "fixtures"


def load_complete_dos(name: str) -> CompleteDos:
    """``name`` is ``"si"`` or ``"nb3sn"``."""
    with open(FIXTURES / f"{name}_dos.json") as f:
        return CompleteDos.from_dict(json.load(f))


def record_from_complete_dos(dos: CompleteDos, record_id: str) -> DOSRecord:
    """DOSRecord with energies relative to E_F, s/p/d site DOS and the total DOS (spins summed)."""
    spd_channels = (OrbitalType.s, OrbitalType.p, OrbitalType.d)
    site_dos = []
    for site in dos.structure:
        spd = dos.get_site_spd_dos(site)
        site_dos.append([spd[o].get_densities() if o in spd else np.zeros(len(dos.energies)) for o in spd_channels])
    return DOSRecord(
        id=record_id,
        source="completedos-fixture",
        crystal=Crystal.from_pymatgen(dos.structure),
        energies=np.asarray(dos.energies, dtype=np.float64) - dos.efermi,
        site_dos=np.asarray(site_dos, dtype=np.float64),
        total_dos=np.asarray(dos.get_densities(), dtype=np.float64),
        efermi=float(dos.efermi),
    )


def load_record(name: str) -> DOSRecord:
    return record_from_complete_dos(load_complete_dos(name), name)
