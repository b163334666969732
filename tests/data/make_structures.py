"""Regenerate ``structures/`` (structure-only test inputs). A maintainer step, never run by the tests::

    python tests/data/make_structures.py /path/to/shared/data/structures

* ``structures/cifs/*.cif``: three CIFs copied verbatim from MatterGen's data release (``cifs.zip``).
* ``structures/mattergen_cifs.zip``: four entries of ``cifs.zip`` copied verbatim, entry names kept.
* ``structures/perov_5_val_head.csv``: the header and first five rows of CDVAE's ``perov_5_val.csv``.
* ``structures/small.extxyz``: three periodic crystals built with ``ase.build.bulk`` and written by ``ase.io.write``
  (independent of dosmatgen's writer), each with an ``id`` in its info line.
"""

from __future__ import annotations

import csv
import sys
import zipfile
from pathlib import Path

FOLDER_ENTRIES = {
    "GdO.cif": "cifs/mattergen/dft_mag_density/GdO.cif",
    "Os.cif": "cifs/mattergen/ml_bulk_modulus/Os.cif",
    "SbAu.cif": "cifs/mattergen/mattergen_base/SbAu.cif",
}
ZIP_ENTRIES = [
    "cifs/mattergen/chemical_system/HfZnN2.cif",
    "cifs/mattergen/ml_bulk_modulus/Re3B.cif",
    "cifs/mattergen/space_group/SrCaSiPt.cif",
    "cifs/mattergen/mattergen_base/SbAu.cif",
]
CSV_ROWS = 5


def main(shared_structures: str) -> None:
    src = Path(shared_structures)
    out = Path(__file__).resolve().parent / "structures"
    (out / "cifs").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src / "cifs.zip") as zin:
        for name, entry in FOLDER_ENTRIES.items():
            (out / "cifs" / name).write_bytes(zin.read(entry))
        with zipfile.ZipFile(out / "mattergen_cifs.zip", "w", compression=zipfile.ZIP_DEFLATED) as zout:
            for entry in ZIP_ENTRIES:
                zout.writestr(entry, zin.read(entry))
    with open(src / "perov_5_val.csv", newline="", encoding="utf-8") as fin, open(
        out / "perov_5_val_head.csv", "w", newline="", encoding="utf-8"
    ) as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        writer.writerow(next(reader))
        for _, row in zip(range(CSV_ROWS), reader):
            writer.writerow(row)

    import ase.io
    from ase.build import bulk

    images = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.61, cubic=True)]
    for atoms, rid in zip(images, ["Si-diamond", "NaCl-rocksalt", "Cu-fcc-cubic"]):
        atoms.info["id"] = rid
    ase.io.write(out / "small.extxyz", images, format="extxyz")


if __name__ == "__main__":
    main(sys.argv[1])
