"""Pack per-structure record files into one flat dataset file in the dos-gpaw-v1 ``dataset.npz`` layout.

The GPAW engine writes one ``records/<id>.npz`` per structure (:mod:`dosmatgen.dft.record_file`). Thousands of
small files are awkward to keep and to version, so a finished batch is packed into one compressed
``dataset-<name>.npz``: N structures flat with offsets, the same keys as dos-gpaw-v1's ``dataset.npz``. The GPAW
reader (:mod:`dosmatgen.data.sources.gpaw_npz`) reads ``dataset.npz`` and every ``dataset-*.npz`` of a folder, and
:func:`dosmatgen.dft.compute.completed_ids` counts packed ids as done, so growth resumes against a packed folder.

By default the DOS arrays (``site_pdos``, ``total_dos``) are stored as float16, which halves the size; the
rounding is at most 2⁻¹¹ ≈ 0.05 % relative (absolute below 6·10⁻⁸ states/eV for the tiny tail values), far below
the DFT and featurization errors. ``dtype="float32"`` keeps the engine's values bit for bit.

All records must share one energy grid and one settings string; a record that differs, a corrupt file or a
duplicate id raises :class:`InvalidRecordError` naming the file, and nothing is written. The output is written
atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dosmatgen.dft.record_file import read_record_arrays
from dosmatgen.errors import InvalidRecordError

PACK_PREFIX = "dataset"
DOS_KEYS = ("site_pdos", "total_dos")
PER_STRUCTURE_KEYS = ("ids", "sources", "num_atoms", "lattice", "total_dos", "energy", "efermi", "n_electrons",
                      "n_ibz_kpoints", "seconds")  # fmt: skip
PER_SITE_KEYS = ("atomic_numbers", "frac_coords", "site_pdos")


@dataclass
class PackSummary:
    """What :func:`pack_records` did: the output file, the packed ids and those left out as already known."""

    path: Path | None
    ids: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    num_sites: int = 0

    def line(self) -> str:
        where = self.path if self.path is not None else "(nothing written)"
        return f"packed {len(self.ids)} structures ({self.num_sites} sites) into {where}; {len(self.excluded)} already known, left out"


def record_files(folder: str | Path) -> list[Path]:
    """The record files of an engine output folder: ``folder/records/*.npz`` and ``folder/worker-*/records/*.npz``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidRecordError("not a folder", file=str(folder))
    files = sorted((folder / "records").glob("*.npz"))
    for worker in sorted(folder.glob("worker-*")):
        files += sorted((worker / "records").glob("*.npz"))
    return files


def packed_files(folder: str | Path) -> list[Path]:
    """``dataset.npz`` and the ``dataset-*.npz`` packs of ``folder``, in a stable order."""
    folder = Path(folder)
    base = [folder / f"{PACK_PREFIX}.npz"] if (folder / f"{PACK_PREFIX}.npz").is_file() else []
    return base + sorted(p for p in folder.glob(f"{PACK_PREFIX}-*.npz") if p.is_file())


def packed_ids(folder: str | Path) -> set[str]:
    """Structure ids held by the dataset files of ``folder`` (see :func:`packed_files`)."""
    ids: set[str] = set()
    for path in packed_files(folder):
        try:
            with np.load(path, allow_pickle=False) as z:
                ids.update(str(x) for x in np.atleast_1d(z["ids"]))
        except Exception as err:
            raise InvalidRecordError(f"cannot read the ids of a packed dataset ({type(err).__name__}: {err})", file=str(path)) from None
    return ids


def record_ids(files: Sequence[str | Path]) -> set[str]:
    """The structure ids stored in record files (file names may be sanitised ids)."""
    return {str(read_record_arrays(f)["ids"][0]) for f in files}


def pack_records(
    files: Sequence[str | Path],
    out: str | Path,
    *,
    exclude: Iterable[str] = (),
    dtype: str = "float16",
) -> PackSummary:
    """Concatenate the record ``files`` (ids not in ``exclude``) into one compressed flat dataset file ``out``.

    Returns the summary; when every record is excluded nothing is written and ``summary.path`` is None.
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the output must be an .npz file, got {out}")
    skip = set(exclude)
    kept: list[dict[str, np.ndarray]] = []
    seen: dict[str, Path] = {}
    summary = PackSummary(path=None)
    grid = settings = first = None
    for raw in files:
        path = Path(raw)
        arrays = read_record_arrays(path)
        rid = str(arrays["ids"][0])
        if rid in skip:
            summary.excluded.append(rid)
            continue
        if rid in seen:
            raise InvalidRecordError(f"duplicate id, already read from {seen[rid]}", file=str(path), record=rid)
        if grid is None:
            grid, settings, first = arrays["energy_grid"], str(arrays["settings"]), path
        elif not np.array_equal(arrays["energy_grid"], grid):
            raise InvalidRecordError(f"energy grid differs from that of {first}", file=str(path), record=rid)
        elif str(arrays["settings"]) != settings:
            raise InvalidRecordError(f"settings differ from those of {first}: {arrays['settings']} vs {settings}", file=str(path), record=rid)
        seen[rid] = path
        kept.append(arrays)
    if not kept:
        return summary

    flat: dict[str, np.ndarray] = {}
    for key in PER_STRUCTURE_KEYS + PER_SITE_KEYS:
        flat[key] = np.concatenate([a[key] for a in kept])
    for key in DOS_KEYS:
        flat[key] = flat[key].astype(dtype)
    flat["ids"] = np.array([str(x) for x in flat["ids"]])
    flat["sources"] = np.array([str(x) for x in flat["sources"]])
    flat["offsets"] = np.concatenate([[0], np.cumsum(flat["num_atoms"])]).astype(np.int64)
    flat["energy_grid"] = grid
    flat["settings"] = np.array(settings)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **flat)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    summary.path = out
    summary.ids = [str(x) for x in flat["ids"]]
    summary.num_sites = int(flat["offsets"][-1])
    return summary
