"""Extract the demo targets (Ni in L1_2 Au3Ni, Ir in rutile IrO2) from a dos-gpaw-v1 dataset.npz.

Run once by developers (the shipped files live in dosmatgen/resources/targets/):
    python tools/make_demo_targets.py ../shared/data/dos-gpaw-v1/dataset.npz
"""

import json
import sys
from pathlib import Path

import numpy as np

DEMOS = {
    "target-Au3Ni": dict(
        name="target-Au3Ni",
        sites=[0],
        description="Ni site DOS of L1_2 Au3Ni (a = 4.02 A), GPAW PBE; the DOSMatGen paper's demo target",
    ),
    "target-IrO2": dict(
        name="target-IrO2",
        sites=[0, 1],
        description="Ir site DOS of rutile IrO2 (a = 4.50 A, c = 3.16 A, u = 0.308), GPAW PBE; the DOSMatGen paper's demo target",
    ),
}


def main(path: str) -> None:
    d = np.load(path, allow_pickle=False)
    ids = list(d["ids"])
    out = Path(__file__).resolve().parents[1] / "dosmatgen" / "resources" / "targets"
    out.mkdir(parents=True, exist_ok=True)
    for sid, meta in DEMOS.items():
        i = ids.index(sid)
        a, b = int(d["offsets"][i]), int(d["offsets"][i + 1])
        np.savez_compressed(
            out / f"{meta['name']}.npz",
            structure_id=sid,
            lattice=d["lattice"][i],
            atomic_numbers=d["atomic_numbers"][a:b],
            frac_coords=d["frac_coords"][a:b],
            energy_grid=d["energy_grid"],
            site_pdos=d["site_pdos"][a:b],
            sites=np.array(meta["sites"]),
            description=meta["description"],
            provenance=json.dumps({"dataset": "dos-gpaw-v1", "settings": json.loads(str(d["settings"]))}),
        )
        print("wrote", out / f"{meta['name']}.npz")


if __name__ == "__main__":
    main(sys.argv[1])
