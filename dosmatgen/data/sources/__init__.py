"""Source readers. Each yields :class:`~dosmatgen.dos.record.DOSRecord` or a located InvalidRecordError per record.

Every reader has the signature ``read_X(path_or_arg, **options) -> Iterator[DOSRecord | InvalidRecordError]``:
a bad record is *yielded* as an ``InvalidRecordError`` (naming file, record and problem) so a builder can skip
and count it; a reader raises (InvalidRecordError / DosmatgenError) only when the whole input is unusable
(missing file, corrupt archive, missing API key). Records are validated with ``DOSRecord.validate`` unless
``validate=False``.

``SOURCES`` maps the ``--source`` names of ``dosmatgen data build`` to the readers.
"""

from __future__ import annotations

from typing import Callable, Iterator

from dosmatgen.data.sources._common import RecordOrError
from dosmatgen.data.sources.completedos import read_completedos, record_from_complete_dos
from dosmatgen.data.sources.gpaw_npz import read_gpaw_npz
from dosmatgen.data.sources.materials_project import PAPER_FILTERS, MPFilters, read_materials_project, search_material_ids
from dosmatgen.data.sources.structure_only import read_cif, read_csv, read_extxyz
from dosmatgen.data.sources.vasprun import read_vasprun
from dosmatgen.errors import InvalidRecordError

Reader = Callable[..., Iterator[RecordOrError]]

#: ``--source`` name -> reader.
SOURCES: dict[str, Reader] = {
    "gpaw": read_gpaw_npz,
    "completedos": read_completedos,
    "vasprun": read_vasprun,
    "mp": read_materials_project,
    "cif": read_cif,
    "csv": read_csv,
    "extxyz": read_extxyz,
}

#: Sources whose records carry no DOS.
STRUCTURE_ONLY_SOURCES = frozenset({"cif", "csv", "extxyz"})


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; InvalidRecordError listing the known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise InvalidRecordError(f"unknown source {name!r}; known sources: {', '.join(sorted(SOURCES))}") from None


__all__ = [
    "SOURCES",
    "STRUCTURE_ONLY_SOURCES",
    "MPFilters",
    "PAPER_FILTERS",
    "Reader",
    "RecordOrError",
    "get_reader",
    "read_cif",
    "read_completedos",
    "read_csv",
    "read_extxyz",
    "read_gpaw_npz",
    "read_materials_project",
    "read_vasprun",
    "record_from_complete_dos",
    "search_material_ids",
]
