"""Export the structures of a dataset store as CIF, extxyz or a zip of CIFs (writers of :mod:`dosmatgen.io.structure_files`)."""

from __future__ import annotations

from pathlib import Path

from dosmatgen.data.store import DatasetStore

FORMATS = ("cif", "extxyz", "zip")


def export_store(store: str | Path | DatasetStore, out: str | Path, fmt: str, split: str = "all") -> tuple[Path, int]:
    """Write the crystals of ``split`` of ``store`` to ``out``; return (path, number written).

    ``fmt``: ``"cif"`` writes a folder of ``<id>.cif`` files, or one multi-block CIF when ``out`` ends in
    ``.cif``; ``"extxyz"`` one extxyz file (id in each frame's info); ``"zip"`` a zip of ``<id>.cif``.
    Structure ids name the files / data blocks / frames.
    """
    from dosmatgen.io.structure_files import write_cif, write_cif_folder, write_cif_zip, write_extxyz

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    st = store if isinstance(store, DatasetStore) else DatasetStore.open(store)
    mem = st.to_memory()
    idx = mem.split_indices(split)
    crystals = [mem.crystal(int(i)) for i in idx]
    ids = [mem.ids[int(i)] for i in idx]
    out = Path(out)
    if fmt == "cif":
        path = write_cif(out, crystals, ids) if out.suffix.lower() == ".cif" else write_cif_folder(out, crystals, ids)
    elif fmt == "zip":
        path = write_cif_zip(out, crystals, ids)
    else:
        path = write_extxyz(out, crystals, ids)
    return Path(path), len(crystals)
