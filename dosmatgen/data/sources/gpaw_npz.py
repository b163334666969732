"""Reader for GPAW DOS data in the ``dos-gpaw-v1`` layout.

Two inputs are accepted:

* a ``dataset.npz`` (or a directory holding one): N structures stored flat with offsets, as described in the
  dataset's README. Keys: ``ids`` (N,), ``sources`` (N,), ``num_atoms`` (N,), ``offsets`` (N+1,), ``lattice``
  (N,3,3) Å, ``atomic_numbers`` (M,), ``frac_coords`` (M,3), ``energy_grid`` (n_E,) eV relative to E_F,
  ``site_pdos`` (M,3,n_E) states/eV for l = s, p, d, ``total_dos`` (N,n_E) states/eV, ``efermi`` (N,) eV,
  ``energy`` (N,) eV, ``n_electrons``, ``n_ibz_kpoints``, ``seconds`` (N,) and ``settings`` (a JSON string).
* a directory holding ``dataset.npz`` and/or ``dataset-*.npz`` packs of engine records (same layout, DOS arrays
  possibly float16; see :mod:`dosmatgen.dft.record_pack`), all read in name order;
* a directory written by the GPAW engine (:mod:`dosmatgen.dft.record_file`): ``DIR/records/<name>.npz``, each
  with the same keys for one structure (N = 1; the id is read from the file, not its name), plus
  ``DIR/failures.jsonl`` (one JSON object with ``id`` and ``error`` per failed attempt; the last entry of an id
  counts). A directory may hold both ``dataset.npz`` and ``records/``.

For a directory, every entry of ``failures.jsonl`` whose id has no record is yielded as an InvalidRecordError
("GPAW calculation failed: ..."), so builders count it as skipped. A corrupt record file, a duplicate id or a
record that fails :meth:`DOSRecord.validate` is yielded as a located error and the other records still load.

Records: ``source`` is the dataset's ``sources`` entry (``"gpaw"`` when absent); ``energies`` is ``energy_grid``
(float64); ``site_dos`` is float32 (n_atoms, 3, n_E) with channels ``("s", "p", "d")``; ``energy`` is None
when the file holds NaN; metadata holds
``reader="gpaw"``, ``n_electrons``, ``n_ibz_kpoints``, ``seconds`` and ``settings`` (the JSON string).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.sources._common import RecordOrError, attempt, describe, require_exists
from dosmatgen.dft.record_pack import packed_files
from dosmatgen.dos.record import SPD_CHANNELS, DOSRecord
from dosmatgen.errors import InvalidRecordError

READER_NAME = "gpaw"
DATASET_FILE = "dataset.npz"
RECORDS_DIR = "records"
FAILURES_FILE = "failures.jsonl"

REQUIRED_KEYS = (
    "ids", "num_atoms", "offsets", "lattice", "atomic_numbers", "frac_coords",
    "energy_grid", "site_pdos", "total_dos", "efermi",
)
PER_STRUCTURE_OPTIONAL = ("sources", "energy", "n_electrons", "n_ibz_kpoints", "seconds")


def read_gpaw_npz(
    path: str | Path,
    *,
    ids: Iterable[str] | None = None,
    include_failures: bool = True,
    validate: bool = True,
    check_geometry: bool = True,
) -> Iterator[RecordOrError]:
    """Yield one DOSRecord (or located InvalidRecordError) per structure of a GPAW dataset file or directory.

    ``ids`` restricts the output to those structure ids. Raises InvalidRecordError only when the whole input is
    unusable: a missing path, a corrupt ``dataset.npz`` or one lacking required arrays, or a directory with
    neither ``dataset.npz`` nor ``records/``.
    """
    root = require_exists(path)
    wanted = None if ids is None else set(map(str, ids))
    seen: dict[str, str] = {}

    def emit(items: Iterator[RecordOrError], file: Path) -> Iterator[RecordOrError]:
        for item in items:
            if isinstance(item, DOSRecord):
                if item.id in seen:
                    yield InvalidRecordError(f"duplicate id, already read from {seen[item.id]}", file=str(file), record=item.id)
                    continue
                seen[item.id] = str(file)
            yield item

    if root.is_file():
        yield from emit(_iter_dataset(root, _load_npz(root, whole_input=True), wanted, validate, check_geometry), root)
        return

    datasets = packed_files(root)  # dataset.npz, then the dataset-*.npz packs
    records = root / RECORDS_DIR
    if not datasets and not records.is_dir():
        raise InvalidRecordError(
            f"not a GPAW dataset: expected {DATASET_FILE}, dataset-*.npz packs or a {RECORDS_DIR}/ folder of <id>.npz files",
            file=str(root),
        )
    for dataset in datasets:
        yield from emit(_iter_dataset(dataset, _load_npz(dataset, whole_input=True), wanted, validate, check_geometry), dataset)
    if records.is_dir():
        for file in sorted(records.glob("*.npz")):
            try:
                arrays = _load_npz(file, whole_input=False)
            except InvalidRecordError as exc:
                yield exc.located(file=str(file), record=file.stem)
                continue
            yield from emit(_iter_dataset(file, arrays, wanted, validate, check_geometry), file)
    failures = root / FAILURES_FILE
    if include_failures and failures.is_file():
        last: dict[str, InvalidRecordError] = {}
        for err in iter_failures(failures):
            last[str(err.record)] = err  # a retried id is listed again: its last entry counts
        for rid, err in last.items():
            if rid in seen:
                continue  # a later rerun succeeded
            if wanted is not None and rid not in wanted:
                continue
            yield err


def iter_failures(path: str | Path) -> Iterator[InvalidRecordError]:
    """Yield one InvalidRecordError per line of a ``failures.jsonl`` (id and error of each failed calculation)."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                rid, error = str(entry["id"]), str(entry.get("error", "unknown error"))
            except (ValueError, KeyError, TypeError) as exc:
                yield InvalidRecordError(f"unreadable failure entry: {describe(exc)}", file=str(path), record=f"line {lineno}")
                continue
            yield InvalidRecordError(f"GPAW calculation failed: {error}", file=str(path), record=rid)


def _load_npz(path: Path, *, whole_input: bool) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InvalidRecordError(f"corrupt or unreadable .npz: {describe(exc)}", file=str(path)) from None
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        hint = " (no Fermi level)" if "efermi" in missing else ""
        raise InvalidRecordError(f"missing required array(s) {missing}{hint}", file=str(path))
    n = np.atleast_1d(arrays["ids"]).shape[0]
    offsets = np.asarray(arrays["offsets"])
    problems = []
    if offsets.shape != (n + 1,):
        problems.append(f"offsets has shape {offsets.shape}, expected ({n + 1},)")
    elif offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != np.asarray(arrays["atomic_numbers"]).shape[0]:
        problems.append("offsets are not non-decreasing prefix sums from 0 to the number of sites")
    for key in ("num_atoms", "lattice", "total_dos", "efermi", *[k for k in PER_STRUCTURE_OPTIONAL if k in arrays]):
        if np.atleast_1d(arrays[key]).shape[0] != n:
            problems.append(f"{key} has {np.atleast_1d(arrays[key]).shape[0]} rows for {n} ids")
    for key in ("frac_coords", "site_pdos"):
        if np.asarray(arrays[key]).shape[0] != np.asarray(arrays["atomic_numbers"]).shape[0]:
            problems.append(f"{key} has {np.asarray(arrays[key]).shape[0]} rows for {np.asarray(arrays['atomic_numbers']).shape[0]} sites")
    if problems:
        # inconsistent flat arrays cannot be split into structures, so the whole file is unusable
        raise InvalidRecordError("; ".join(problems), file=str(path))
    return arrays


def _scalar(arrays: dict[str, np.ndarray], key: str, i: int) -> Any:
    if key not in arrays:
        return None
    v = np.atleast_1d(arrays[key])[i]
    return v.item() if hasattr(v, "item") else v


def _iter_dataset(
    file: Path, arrays: dict[str, np.ndarray], wanted: set[str] | None, validate: bool, check_geometry: bool
) -> Iterator[RecordOrError]:
    ids = [str(x) for x in np.atleast_1d(arrays["ids"])]
    offsets = np.asarray(arrays["offsets"], dtype=np.int64)
    settings = str(arrays["settings"]) if "settings" in arrays else None
    energies = np.asarray(arrays["energy_grid"], dtype=np.float64)
    site_pdos, total = arrays["site_pdos"], np.asarray(arrays["total_dos"])
    if total.ndim == 1:
        total = total[None, :]

    for i, rid in enumerate(ids):
        if wanted is not None and rid not in wanted:
            continue
        lo, hi = int(offsets[i]), int(offsets[i + 1])

        def build(i: int = i, rid: str = rid, lo: int = lo, hi: int = hi) -> DOSRecord:
            if int(np.atleast_1d(arrays["num_atoms"])[i]) != hi - lo:
                raise InvalidRecordError(f"num_atoms={int(np.atleast_1d(arrays['num_atoms'])[i])} but offsets give {hi - lo} sites")
            crystal = Crystal(arrays["atomic_numbers"][lo:hi], arrays["frac_coords"][lo:hi], np.asarray(arrays["lattice"]).reshape(-1, 3, 3)[i])
            efermi = _scalar(arrays, "efermi", i)
            energy = _scalar(arrays, "energy", i)
            source = _scalar(arrays, "sources", i)
            n_k = _scalar(arrays, "n_ibz_kpoints", i)
            metadata = {
                "reader": READER_NAME,
                "n_electrons": _scalar(arrays, "n_electrons", i),
                "n_ibz_kpoints": None if n_k is None else int(n_k),
                "seconds": _scalar(arrays, "seconds", i),
                "settings": settings,
            }
            return DOSRecord(
                id=rid,
                source=str(source) if source is not None else READER_NAME,
                crystal=crystal,
                energies=energies,
                site_dos=np.asarray(site_pdos[lo:hi], dtype=np.float32),  # float16 in packs
                channels=SPD_CHANNELS,
                total_dos=np.asarray(total[i], dtype=np.float32),
                efermi=None if efermi is None else float(efermi),
                energy=None if energy is None or not np.isfinite(energy) else float(energy),
                metadata=metadata,
            )

        yield attempt(build, file=file, record=rid, validate=validate, check_geometry=check_geometry)
