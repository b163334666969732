"""Candidates to rank: relaxed structures with an id, and the formation energy and flags of the relaxation if known.

Structures come from CIF files, folders or zips of CIFs, or extxyz (:func:`dosmatgen.io.structure_files.iter_structures`).
A relaxation table is a CSV with one row per structure: an id column (``id`` by default) and optionally a
formation-energy column in eV/atom (the first present of :data:`FORMATION_ENERGY_COLUMNS`, or one named
explicitly) and a flags column (:data:`FLAG_COLUMNS`: free text, e.g. ``not_converged``), which are carried into
the ranked table.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError

#: formation-energy column names recognised in a relaxation table (eV/atom), in order of preference
FORMATION_ENERGY_COLUMNS = ("formation_energy_eV_per_atom", "formation_energy_relaxed", "formation_energy_per_atom", "formation_energy", "e_form")
#: columns whose non-empty values become flags of the candidate
FLAG_COLUMNS = ("flags", "status", "reason")
#: status values that are not problems (not shown as flags)
OK_STATUS = {"", "ok", "converged", "passed", "0", "none"}


@dataclass
class Candidate:
    """One structure to rank. ``formation_energy`` in eV/atom (None when unknown); ``flags`` free-text notes."""

    id: str
    crystal: Crystal
    formation_energy: float | None = None
    flags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def load_candidates(paths: Iterable[str | Path]) -> tuple[list[Candidate], list[InvalidRecordError]]:
    """Read every structure of ``paths``: ``(candidates, errors)``; an unreadable record is an error, not fatal.

    Raises InvalidRecordError for a path that does not exist or has an unknown format, and for duplicate ids.
    """
    from dosmatgen.io.structure_files import iter_structures

    candidates: list[Candidate] = []
    errors: list[InvalidRecordError] = []
    seen: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InvalidRecordError("no such file or directory", file=str(path))
        for rid, item in iter_structures(path):
            if isinstance(item, InvalidRecordError):
                errors.append(item)
                continue
            if rid in seen:
                raise InvalidRecordError(f"duplicate candidate id {rid!r} (also in {seen[rid]})", file=str(path))
            seen[rid] = str(path)
            candidates.append(Candidate(rid, item))
    return candidates, errors


def _float_or_none(text: str | None) -> float | None:
    if text is None or not str(text).strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_relaxation_table(path: str | Path, *, id_column: str = "id", formation_energy_column: str | None = None) -> dict[str, dict[str, Any]]:
    """``id -> {"formation_energy": float | None, "flags": tuple[str, ...]}`` from a relaxation CSV (see module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("relaxation table not found", file=str(p))
    try:
        with open(p, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InvalidRecordError(f"cannot read the relaxation table: {err}", file=str(p)) from None
    if id_column not in header:
        raise InvalidRecordError(f"relaxation table has no {id_column!r} column (columns: {', '.join(header)})", file=str(p))
    if formation_energy_column is not None:
        if formation_energy_column not in header:
            raise InvalidRecordError(f"relaxation table has no {formation_energy_column!r} column", file=str(p))
        fe_col = formation_energy_column
    else:
        fe_col = next((c for c in FORMATION_ENERGY_COLUMNS if c in header), None)
    flag_cols = [c for c in FLAG_COLUMNS if c in header]
    out: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(rows, 2):
        rid = (row.get(id_column) or "").strip()
        if not rid:
            raise InvalidRecordError(f"empty {id_column!r}", file=str(p), record=f"line {n}")
        flags = tuple(
            f"{c}={row[c].strip()}" if c != "flags" else row[c].strip()
            for c in flag_cols
            if row.get(c) is not None and row[c].strip().lower() not in OK_STATUS
        )
        out[rid] = {"formation_energy": _float_or_none(row.get(fe_col)) if fe_col else None, "flags": flags}
    return out


def join_relaxation_table(candidates: Sequence[Candidate], table: dict[str, dict[str, Any]]) -> list[Candidate]:
    """Candidates with the table's formation energy and flags; a candidate missing from the table is flagged."""
    out = []
    for c in candidates:
        row = table.get(c.id)
        if row is None:
            out.append(replace(c, flags=c.flags + ("not in relaxation table",)))
        else:
            out.append(replace(c, formation_energy=row["formation_energy"], flags=c.flags + tuple(row["flags"])))
    return out
