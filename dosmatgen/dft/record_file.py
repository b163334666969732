"""One computed DOS record as one ``.npz`` file with the keys of dos-gpaw-v1's ``dataset.npz`` (N = 1).

Keys and shapes for a structure of n atoms on an n_E-point grid:
``ids`` (1,) str, ``sources`` (1,) str, ``num_atoms`` (1,) int32, ``offsets`` (2,) int64 = [0, n],
``lattice`` (1,3,3) float64 Å, ``atomic_numbers`` (n,) int16, ``frac_coords`` (n,3) float64,
``energy_grid`` (n_E,) float32 eV relative to E_F, ``site_pdos`` (n,3,n_E) float32 states/eV (s, p, d),
``total_dos`` (1,n_E) float32 states/eV, ``energy`` (1,) float64 eV, ``efermi`` (1,) float64 eV (absolute),
``n_electrons`` (1,) float64, ``n_ibz_kpoints`` (1,) int32, ``seconds`` (1,) float32 wall seconds,
``settings`` () str (JSON).

Files are written atomically (temporary file in the same folder, then ``os.replace``), so a reader never sees
half a record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.record import SPD_CHANNELS, DOSRecord
from dosmatgen.errors import InvalidRecordError

RECORD_KEYS = (
    "ids", "sources", "num_atoms", "offsets", "lattice", "atomic_numbers", "frac_coords", "energy_grid",
    "site_pdos", "total_dos", "energy", "efermi", "n_electrons", "n_ibz_kpoints", "seconds", "settings",
)  # fmt: skip


def record_to_arrays(record: DOSRecord) -> dict[str, np.ndarray]:
    """The npz arrays of one record (see the module docstring). The record must have s/p/d site and total DOS."""
    if record.site_dos is None or record.total_dos is None or record.energies is None:
        raise InvalidRecordError("a computed record needs site DOS, total DOS and energies", record=record.id)
    if tuple(record.channels) != SPD_CHANNELS:
        raise InvalidRecordError(f"site DOS channels must be {SPD_CHANNELS}, got {record.channels}", record=record.id)
    meta = record.metadata
    c = record.crystal
    return {
        "ids": np.array([record.id]),
        "sources": np.array([record.source]),
        "num_atoms": np.array([c.num_atoms], dtype=np.int32),
        "offsets": np.array([0, c.num_atoms], dtype=np.int64),
        "lattice": c.lattice[None].astype(np.float64),
        "atomic_numbers": c.atomic_numbers.astype(np.int16),
        "frac_coords": c.frac_coords.astype(np.float64),
        "energy_grid": np.asarray(record.energies, dtype=np.float32),
        "site_pdos": np.asarray(record.site_dos, dtype=np.float32),
        "total_dos": np.asarray(record.total_dos, dtype=np.float32)[None],
        "energy": np.array([np.nan if record.energy is None else record.energy], dtype=np.float64),
        "efermi": np.array([record.efermi], dtype=np.float64),
        "n_electrons": np.array([meta.get("n_electrons", np.nan)], dtype=np.float64),
        "n_ibz_kpoints": np.array([meta.get("n_ibz_kpoints", -1)], dtype=np.int32),
        "seconds": np.array([meta.get("seconds", np.nan)], dtype=np.float32),
        "settings": np.array(_settings_json(meta.get("settings", {}))),
    }


def _settings_json(settings: Any) -> str:
    """Settings as a JSON string; a string (as the GPAW reader keeps them) is taken as JSON already."""
    return settings if isinstance(settings, str) else json.dumps(settings, sort_keys=True)


def write_record_npz(record: DOSRecord, path: str | Path) -> Path:
    """Write ``record`` to ``path`` atomically and return the path."""
    path = Path(path)
    arrays = record_to_arrays(record)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_record_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one record file, as stored (raises InvalidRecordError naming the file when it is unreadable,
    lacks a key or does not hold exactly one structure)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in RECORD_KEYS if k not in z.files]
            if missing:
                raise InvalidRecordError(f"missing keys {missing}")
            a = {k: z[k] for k in RECORD_KEYS}
    except InvalidRecordError as err:
        raise err.located(file=str(path)) from None
    except Exception as err:  # truncated or not an npz
        raise InvalidRecordError(f"cannot read record file ({type(err).__name__}: {err})", file=str(path)) from None
    if len(a["ids"]) != 1:
        raise InvalidRecordError(f"expected one structure per record file, found {len(a['ids'])}", file=str(path))
    n = int(a["num_atoms"][0])
    if n < 1 or a["atomic_numbers"].shape != (n,) or a["site_pdos"].shape[0] != n:
        raise InvalidRecordError("not a one-structure record (num_atoms and per-site arrays disagree)", file=str(path))
    return a


def read_record_npz(path: str | Path) -> DOSRecord:
    """Read one record file written by :func:`write_record_npz` (raises InvalidRecordError naming the file)."""
    a = read_record_arrays(path)
    record = DOSRecord(
        id=str(a["ids"][0]),
        source=str(a["sources"][0]),
        crystal=Crystal(a["atomic_numbers"].astype(np.int64), a["frac_coords"], a["lattice"][0]),
        energies=a["energy_grid"].astype(np.float64),
        site_dos=a["site_pdos"],
        channels=SPD_CHANNELS,
        total_dos=a["total_dos"][0],
        efermi=float(a["efermi"][0]),
        energy=float(a["energy"][0]),
        metadata={
            "n_electrons": float(a["n_electrons"][0]),
            "n_ibz_kpoints": int(a["n_ibz_kpoints"][0]),
            "seconds": float(a["seconds"][0]),
            "settings": json.loads(str(a["settings"])),
        },
    )
    return record.validate(file=str(path), check_geometry=False)
