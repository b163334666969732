"""Reader for pymatgen ``CompleteDos`` JSON, and the conversion every pymatgen-based reader shares.

A file holds one ``CompleteDos.as_dict()`` or a list of them (``.json`` or ``.json.gz``); a directory is read file
by file (``*.json``, ``*.json.gz``, sorted). Conventions of :func:`record_from_complete_dos`:

* ``energies`` = ``cdos.energies - cdos.efermi`` (eV relative to E_F, the source's own grid).
* ``site_dos`` (n_atoms, 3, n_E): ``cdos.get_site_spd_dos(site)`` for l = s, p, d, states/eV in the source's units.
  A channel the source does not project on (e.g. no d for H) is zeros. f projections are not kept
  (``metadata["dropped_channels"]`` lists them); the total DOS still includes them.
* Spin-polarised data: spin up and spin down are **summed** for both the site and total DOS
  (``metadata["spin_polarized"]`` records that the source had two spins). dosmatgen's DOS is spin-summed.
* ``total_dos`` = ``cdos.densities`` summed over spins. ``efermi`` = ``cdos.efermi`` (absolute, the source's zero).
* A CompleteDos without site projections gives ``site_dos=None`` (total DOS only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.sources._common import PARSE_ERRORS, RecordOrError, attempt, locate, require_exists
from dosmatgen.dos.record import SPD_CHANNELS, DOSRecord
from dosmatgen.errors import InvalidRecordError

READER_NAME = "completedos"


def _spin_sum(densities: dict) -> np.ndarray:
    """Sum a pymatgen ``{Spin: array}`` density dict over spins -> (n_E,) float64."""
    if not densities:
        raise InvalidRecordError("DOS has no densities")
    return np.sum([np.asarray(v, dtype=np.float64) for v in densities.values()], axis=0)


def record_from_complete_dos(
    cdos: Any,
    id: str,
    source: str = READER_NAME,
    *,
    energy: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> DOSRecord:
    """Convert a pymatgen ``CompleteDos`` into a (not yet validated) DOSRecord; see the module docstring."""
    from pymatgen.electronic_structure.core import OrbitalType

    if cdos.efermi is None:
        raise InvalidRecordError("missing Fermi level (efermi is None)", record=id)
    efermi = float(cdos.efermi)
    energies = np.asarray(cdos.energies, dtype=np.float64) - efermi
    crystal = Crystal.from_pymatgen(cdos.structure)
    spin_polarized = len(cdos.densities) > 1
    dropped: set[str] = set()
    site_dos = None
    if cdos.pdos:
        site_dos = np.zeros((crystal.num_atoms, len(SPD_CHANNELS), energies.size), dtype=np.float64)
        for i, site in enumerate(cdos.structure):
            if site not in cdos.pdos:
                raise InvalidRecordError(f"site {i} ({site.species_string}) has no projected DOS")
            for orbital, dos in cdos.get_site_spd_dos(site).items():
                if orbital == OrbitalType.f:
                    dropped.add("f")
                    continue
                values = _spin_sum(dos.densities)
                if values.shape != energies.shape:
                    raise InvalidRecordError(
                        f"site {i} {orbital.name} DOS has {values.shape[0]} energies, expected {energies.size}"
                    )
                site_dos[i, SPD_CHANNELS.index(orbital.name)] = values
    meta = {"reader": READER_NAME, "spin_polarized": spin_polarized, **(metadata or {})}
    if dropped:
        meta["dropped_channels"] = sorted(dropped)
    return DOSRecord(
        id=str(id),
        source=source,
        crystal=crystal,
        energies=energies,
        site_dos=site_dos,
        channels=SPD_CHANNELS,
        total_dos=_spin_sum(cdos.densities),
        efermi=efermi,
        energy=energy,
        metadata=meta,
    )


def complete_dos_from_dict(d: dict) -> Any:
    """``CompleteDos.from_dict`` with the problems a user can fix turned into InvalidRecordErrors."""
    from pymatgen.electronic_structure.dos import CompleteDos

    if not isinstance(d, dict):
        raise InvalidRecordError(f"expected a CompleteDos JSON object, got {type(d).__name__}")
    if d.get("efermi") is None:
        raise InvalidRecordError("missing Fermi level (no 'efermi' in the CompleteDos JSON)")
    for key in ("structure", "energies", "densities"):
        if key not in d:
            raise InvalidRecordError(f"not a CompleteDos: no {key!r} field")
    if isinstance(d["structure"], dict) and not d["structure"].get("sites"):
        raise InvalidRecordError("empty structure (no atoms)")
    return CompleteDos.from_dict(d)


def _record_id(d: Any, stem: str, index: int | None) -> str:
    if isinstance(d, dict):
        for key in ("material_id", "task_id", "id"):
            if d.get(key) is not None:
                return str(d[key])
    return stem if index is None else f"{stem}:{index}"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load_json(path: Path) -> Any:
    if path.name.endswith(".gz"):
        import gzip

        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _iter_file(path: Path, source: str, validate: bool, check_geometry: bool) -> Iterator[RecordOrError]:
    try:
        data = _load_json(path)
    except PARSE_ERRORS as exc:
        yield locate(exc, file=path, record=None, context="unreadable JSON")
        return
    items = [(None, data)] if isinstance(data, dict) else list(enumerate(data)) if isinstance(data, list) else None
    if items is None:
        yield InvalidRecordError(f"expected a CompleteDos object or a list of them, got {type(data).__name__}", file=str(path))
        return
    stem = _stem(path)
    for index, d in items:
        rid = _record_id(d, stem, index)
        yield attempt(
            lambda d=d, rid=rid: record_from_complete_dos(complete_dos_from_dict(d), rid, source),
            file=path, record=rid, context="cannot read CompleteDos", validate=validate, check_geometry=check_geometry,
        )


def read_completedos(
    path: str | Path, *, source: str = READER_NAME, validate: bool = True, check_geometry: bool = True
) -> Iterator[RecordOrError]:
    """Yield a DOSRecord (or located InvalidRecordError) per CompleteDos in a JSON file or a folder of them.

    Ids: the object's ``material_id``/``task_id``/``id`` when present, else the file stem (``stem:i`` for the
    i-th object of a list). Raises InvalidRecordError only for a missing path or a folder with no JSON files.
    """
    root = require_exists(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz")))
        if not files:
            raise InvalidRecordError("folder has no .json or .json.gz files", file=str(root))
    else:
        files = [root]
    for f in files:
        yield from _iter_file(f, source, validate, check_geometry)
