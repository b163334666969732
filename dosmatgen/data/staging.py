"""Staged parts of a dataset build: the unit of work that one writer owns.

A build splits its record stream into parts of ``part_size`` consecutive records (part k holds stream positions
``k*part_size .. (k+1)*part_size - 1``, bad records included). Each part is featurized by exactly one writer
and saved as ``STAGING/part-<k>.npz``, written to a temporary name and renamed, so a part file exists only when
it is complete. The set of part files is the manifest of finished work; ``STAGING/build.json`` holds the
fingerprint of the build (source, inputs, options) so that a rerun with different inputs never reuses parts.

A part file holds the accepted records as flat arrays (same layout as the store, features float32) plus the
skipped records as JSON (file, record, problem).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.errors import StoreError

PART_RE = re.compile(r"^part-(\d{6})\.npz$")
FINGERPRINT_FILE = "build.json"


@dataclass
class SkippedRecord:
    """A record the builder did not store, and why."""

    file: str | None
    record: str | None
    problem: str

    @property
    def message(self) -> str:
        where = " ".join(x for x in (self.file, f"[record {self.record}]" if self.record is not None else None) if x)
        return f"{where}: {self.problem}" if where else self.problem


@dataclass
class Part:
    """The accepted and skipped records of one part, as arrays (M atoms, N structures in the part)."""

    index: int
    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    num_atoms: list[int] = field(default_factory=list)
    lattice: list[np.ndarray] = field(default_factory=list)
    atomic_numbers: list[np.ndarray] = field(default_factory=list)
    frac_coords: list[np.ndarray] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    efermi: list[float] = field(default_factory=list)
    has_dos: list[bool] = field(default_factory=list)
    site_dos: list[np.ndarray] = field(default_factory=list)
    total_dos: list[np.ndarray] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    num_read: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def part_path(staging: Path, index: int) -> Path:
    return staging / f"part-{index:06d}.npz"


def finished_parts(staging: Path) -> set[int]:
    """Indices of the parts whose files are complete (temporary files are ignored)."""
    if not staging.is_dir():
        return set()
    return {int(m.group(1)) for p in staging.iterdir() if (m := PART_RE.match(p.name))}


def prepare_staging(staging: Path, fingerprint: dict[str, Any]) -> set[int]:
    """Create ``staging`` (or reuse it when its fingerprint matches) and return the finished part indices.

    A staging folder from a build with another fingerprint is deleted: its parts belong to other inputs.
    Leftover temporary files of a writer that crashed mid-write are removed.
    """
    fp_file = staging / FINGERPRINT_FILE
    if staging.exists():
        try:
            old = json.loads(fp_file.read_text())
        except (OSError, ValueError):
            old = None
        if old != fingerprint:
            shutil.rmtree(staging)
    staging.mkdir(parents=True, exist_ok=True)
    for p in staging.iterdir():
        if ".tmp-" in p.name:
            p.unlink(missing_ok=True)
    if not fp_file.exists():
        _atomic_write_bytes(fp_file, json.dumps(fingerprint, indent=1, sort_keys=True).encode())
    return finished_parts(staging)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_part(staging: Path, part: Part) -> Path:
    """Save ``part`` atomically (temporary file + rename) and return its path."""
    n = len(part)
    m = int(sum(part.num_atoms))
    arrays: dict[str, np.ndarray] = {
        "index": np.array(part.index, dtype=np.int64),
        "num_read": np.array(part.num_read, dtype=np.int64),
        "ids": np.array(part.ids, dtype=str),
        "sources": np.array(part.sources, dtype=str),
        "metadata": np.array(part.metadata, dtype=str),
        "num_atoms": np.array(part.num_atoms, dtype=np.int64),
        "lattice": np.array(part.lattice, dtype=np.float64).reshape(n, 3, 3),
        "atomic_numbers": np.concatenate(part.atomic_numbers).astype(np.int16) if n else np.zeros(0, np.int16),
        "frac_coords": np.concatenate(part.frac_coords).astype(np.float64) if n else np.zeros((0, 3)),
        "energy": np.array(part.energy, dtype=np.float64),
        "efermi": np.array(part.efermi, dtype=np.float64),
        "has_dos": np.array(part.has_dos, dtype=bool),
        "skipped": np.array(json.dumps([s.__dict__ for s in part.skipped])),
    }
    if any(part.has_dos):
        arrays["site_dos"] = np.concatenate(part.site_dos).astype(np.float32)
        arrays["total_dos"] = np.stack(part.total_dos).astype(np.float32)
        if arrays["site_dos"].shape[0] != m:
            raise ValueError("part mixes records with and without DOS")
    final = part_path(staging, part.index)
    tmp = final.with_name(f"{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def read_part(path: Path) -> dict[str, Any]:
    """Load a part file as a dict of arrays (plus ``skipped`` as a list of SkippedRecord)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            out: dict[str, Any] = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - any failure means the staged part is unusable
        raise StoreError(f"staged part {path} is unreadable ({type(exc).__name__}: {exc}); delete it and rerun") from None
    out["skipped"] = [SkippedRecord(**d) for d in json.loads(str(out["skipped"]))]
    return out
