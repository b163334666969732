"""Structure files: CIF, extxyz and zips of CIFs, read and written as :class:`~dosmatgen.crystal.Crystal` lists."""

from dosmatgen.io.atomic import atomic_write
from dosmatgen.io.structure_files import (
    crystal_from_structure,
    crystal_to_cif,
    iter_cif,
    iter_cif_text,
    iter_extxyz,
    iter_structures,
    read_structures,
    write_cif,
    write_cif_folder,
    write_cif_zip,
    write_extxyz,
    write_structures,
)

__all__ = [
    "atomic_write",
    "crystal_from_structure",
    "crystal_to_cif",
    "iter_cif",
    "iter_cif_text",
    "iter_extxyz",
    "iter_structures",
    "read_structures",
    "write_cif",
    "write_cif_folder",
    "write_cif_zip",
    "write_extxyz",
    "write_structures",
]
