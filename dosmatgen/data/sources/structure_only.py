"""Readers for structure-only inputs (no DOS): CIF files/folders/zips, a CSV with a CIF column, extxyz.

Each yields :class:`DOSRecord` with ``energies``, ``site_dos`` and ``total_dos`` set to None (or a located
InvalidRecordError for a bad record). Records are validated with ``record.validate`` (empty structure,
degenerate cell, atoms on top of each other); parse problems (malformed CIF, unknown element, partial
occupancies) come from :mod:`dosmatgen.io.structure_files`. Each record's ``metadata`` names the file it came from.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from dosmatgen.data.sources._common import RecordOrError, require_exists
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.structure_files import StructureItem, iter_cif, iter_cif_text, iter_extxyz


def _records(items: Iterator[StructureItem], source: str, default_file: Path, validate: bool, check_geometry: bool) -> Iterator[RecordOrError]:
    for rid, item in items:
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        file = item.metadata.get("file", str(default_file))
        record = item.metadata.get("record", rid)
        rec = DOSRecord(id=rid, source=source, crystal=item, metadata={"reader": source, "file": file})
        if not validate:
            yield rec
            continue
        try:
            yield rec.validate(file=file, check_geometry=check_geometry)
        except InvalidRecordError as err:
            # keep the reader's richer location (e.g. "row 3 (18517)" of a CSV, the zip entry name)
            yield InvalidRecordError(err.problem, file=file, record=record)


def read_cif(path: str | Path, *, source: str = "cif", validate: bool = True, check_geometry: bool = True) -> Iterator[RecordOrError]:
    """Structure-only records from a .cif file, a folder of CIFs (recursive) or a zip of CIFs (ids as in ``iter_cif``)."""
    p = require_exists(path)
    yield from _records(iter_cif(p), source, p, validate, check_geometry)


def read_extxyz(path: str | Path, *, source: str = "extxyz", validate: bool = True, check_geometry: bool = True) -> Iterator[RecordOrError]:
    """Structure-only records, one per frame of an extxyz file (ids from ``info["id"]`` or ``<stem>:<frame>``)."""
    p = require_exists(path)
    yield from _records(iter_extxyz(p), source, p, validate, check_geometry)


def read_csv(
    path: str | Path,
    *,
    cif_column: str = "cif",
    id_column: str = "material_id",
    source: str = "csv",
    validate: bool = True,
    check_geometry: bool = True,
) -> Iterator[RecordOrError]:
    """Structure-only records from a CSV whose ``cif_column`` holds CIF text (e.g. CDVAE's perov_5 CSVs).

    The id is the row's ``id_column`` value when that column exists and is non-empty, else ``<stem>:<row>``
    (row = 0-based data row). Errors name the row: ``[record row 3 (18517)]``. Raises InvalidRecordError when
    the file is missing or has no ``cif_column``.
    """
    p = require_exists(path)

    def items() -> Iterator[StructureItem]:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or cif_column not in reader.fieldnames:
                raise InvalidRecordError(f"CSV has no {cif_column!r} column (columns: {reader.fieldnames})", file=str(p))
            for row_index, row in enumerate(reader):
                raw_id = (row.get(id_column) or "").strip() if id_column in reader.fieldnames else ""
                rid = raw_id or f"{p.stem}:{row_index}"
                where = f"row {row_index} ({rid})" if raw_id else f"row {row_index}"
                text = row.get(cif_column) or ""
                if not text.strip():
                    yield rid, InvalidRecordError("empty CIF cell", file=str(p), record=where)
                    continue
                yield from iter_cif_text(text, rid, file=str(p), record=where)

    yield from _records(items(), source, p, validate, check_geometry)
