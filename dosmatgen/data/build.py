"""Build a dataset store from a source: read, validate, featurize, stage in parts, consolidate.

``build_dataset(source, inputs, out, options)``

1. Reads records with the reader ``SOURCES[source]`` (:mod:`dosmatgen.data.sources`), input after input. A
   bad record, or an input that cannot be read at all, is skipped and counted with its message.
2. Splits the record stream into parts of ``options.part_size`` consecutive records. Each part is validated
   and featurized (site features, per-atom total features) and staged atomically in
   ``OUT.staging/part-<k>.npz`` (:mod:`dosmatgen.data.staging`). One writer owns a whole part, so parts can
   be built by different processes; a record is either in its part file completely or not at all.
3. Consolidates: concatenates the parts in order, drops later duplicates of an id, assigns the split by id
   hash (:mod:`dosmatgen.data.split`), moves every val/test structure with a StructureMatcher twin in another split
   into train (``options.dedup_splits``; counted in the summary and the store attrs ``split_dedup``), computes the DOS-derived properties from the stored (float16) total
   features, fits the site and total scalers on the train split, and writes the store
   atomically (:func:`dosmatgen.data.store.write_store`). The staging folder is then removed.

An interrupted build leaves finished part files (and maybe a temporary folder); rerunning the same command
reuses the finished parts, builds the missing ones and consolidates, so the store ends with every record once:
no duplicates, no gaps. A rerun with other inputs or options discards the old staging folder.

Structure-only sources (``cif``, ``csv``, ``extxyz``) give a store with ``has_dos = false``: no DOS features,
properties or scalers. For DOS sources a record without a site DOS is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from dosmatgen import __version__
from dosmatgen.crystal import Crystal
from dosmatgen.data import schema as S
from dosmatgen.data.arrays import DatasetArrays
from dosmatgen.data.split import DEFAULT_FRACTIONS, move_split_twins_to_train, split_codes, split_moves_summary
from dosmatgen.data.staging import Part, SkippedRecord, finished_parts, part_path, prepare_staging, read_part, write_part
from dosmatgen.data.store import write_store
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError, StoreError

log = logging.getLogger(__name__)


@dataclass
class BuildOptions:
    """Settings of a build. ``sigma_ev``: extra Gaussian smoothing (eV) of the site features; ``part_size``:
    records per staged part; ``reader_options``: keyword arguments passed to the source reader."""

    sigma_ev: float = 0.1
    part_size: int = 128
    overwrite: bool = False
    split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    split_salt: str = ""
    check_geometry: bool = True
    total_from_sites: bool = False
    reader_options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    keep_staging: bool = False
    #: deduplicate across splits (:func:`dosmatgen.data.split.move_split_twins_to_train`)
    dedup_splits: bool = True


@dataclass
class BuildSummary:
    """What a build did. ``skipped`` lists every record that was not stored, with its message."""

    out: Path
    source: str
    written: bool
    num_read: int
    num_stored: int
    num_sites: int
    has_dos: bool
    split_sizes: dict[str, int]
    skipped: list[SkippedRecord]
    parts_total: int
    parts_reused: int
    seconds: float
    split_dedup: dict[str, Any] | None = None

    def report(self, max_skipped: int | None = 20) -> str:
        """A human-readable multi-line report."""
        lines = []
        if self.written:
            splits = ", ".join(f"{k} {v}" for k, v in self.split_sizes.items())
            lines.append(
                f"built {self.out}: {self.num_stored} structures, {self.num_sites} sites "
                f"({'with DOS' if self.has_dos else 'structures only'}); splits: {splits}"
            )
            if self.split_dedup is not None:
                moved = self.split_dedup["moved"]
                lines.append(f"split dedup: {self.split_dedup['num_moved']} structures joined train as StructureMatcher "
                             f"twins of a structure in another split (from val {moved['val']}, from test {moved['test']})")
        else:
            lines.append(f"nothing built: none of the {self.num_read} records read could be stored")
        lines.append(
            f"read {self.num_read} records from source {self.source!r} in {self.seconds:.1f} s; "
            f"skipped {len(self.skipped)}; parts {self.parts_total} ({self.parts_reused} reused from an earlier run)"
        )
        if self.skipped:
            lines.append("skipped records:")
            shown = self.skipped if max_skipped is None else self.skipped[:max_skipped]
            lines += [f"  - {s.message}" for s in shown]
            if len(shown) < len(self.skipped):
                lines.append(f"  ... and {len(self.skipped) - len(shown)} more")
        return "\n".join(lines)


def staging_path(out: Path) -> Path:
    return out.with_name(out.name + ".staging")


# ============================================================================ reading
def _reader(source: str) -> Callable[..., Iterable[DOSRecord | InvalidRecordError]]:
    """The reader registered in ``dosmatgen.data.sources.SOURCES`` (InvalidRecordError for an unknown name)."""
    from dosmatgen.data.sources import get_reader

    return get_reader(source)


def source_has_dos(source: str) -> bool:
    """False for the structure-only sources (cif, csv, extxyz)."""
    from dosmatgen.data.sources import STRUCTURE_ONLY_SOURCES

    return source not in STRUCTURE_ONLY_SOURCES


def iter_stream(source: str, inputs: Sequence[str | Path], reader_options: dict[str, Any] | None = None) -> Iterator[DOSRecord | InvalidRecordError]:
    """Every record (or located error) of every input, in order. An input that cannot be read at all
    contributes one error at the point where reading stopped."""
    reader = _reader(source)
    for inp in inputs:
        try:
            yield from reader(inp, **(reader_options or {}))
        except InvalidRecordError as err:
            yield err.located(file=str(inp))


def _fingerprint(source: str, inputs: Sequence[str | Path], options: BuildOptions) -> dict[str, Any]:
    """What identifies a build: source, inputs (path, size, mtime of every file) and the options that change results."""
    files = []
    for inp in inputs:
        p = Path(inp)
        paths = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in paths:
            try:
                st = q.stat()
                files.append([str(q.resolve()), st.st_size, st.st_mtime_ns])
            except OSError:
                files.append([str(q), None, None])
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()
    return {
        "dosmatgen": __version__,
        "schema_version": S.SCHEMA_VERSION,
        "source": source,
        "inputs": [str(Path(i).resolve()) for i in inputs],
        "input_files_sha256": digest,
        "sigma_ev": options.sigma_ev,
        "part_size": options.part_size,
        "check_geometry": options.check_geometry,
        "total_from_sites": options.total_from_sites,
        "reader_options": json.loads(json.dumps(options.reader_options, default=str)),
    }


# ============================================================================ one part
def _features(record: DOSRecord, options: BuildOptions) -> tuple[np.ndarray, np.ndarray]:
    from dosmatgen.dos.featurize import site_features, total_features

    if record.site_dos is None:
        raise InvalidRecordError("record has no site DOS (this source's stores hold site DOS features)")
    site = site_features(record, sigma_ev=options.sigma_ev)
    total = total_features(record, from_sites=options.total_from_sites)
    if site.shape != (record.crystal.num_atoms, SITE_GRID.n) or total.shape != (TOTAL_GRID.n,):
        raise InvalidRecordError(f"featurizer returned shapes {site.shape} and {total.shape}")
    if not (np.all(np.isfinite(site)) and np.all(np.isfinite(total))):
        raise InvalidRecordError("DOS features are not finite")
    if max(float(site.max(initial=0.0)), float(total.max(initial=0.0))) > float(np.finfo(np.float16).max):
        raise InvalidRecordError("DOS features exceed the float16 range of the store")
    return site, total


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def build_part(index: int, items: Sequence[DOSRecord | InvalidRecordError], has_dos: bool, options: BuildOptions) -> Part:
    """Validate and featurize the records of one part; bad records go to ``part.skipped``. Nothing is half-added:
    every field of a record is computed before any of it is appended."""
    part = Part(index=index, num_read=len(items))
    for item in items:
        if isinstance(item, InvalidRecordError):
            part.skipped.append(SkippedRecord(item.file, None if item.record is None else str(item.record), item.problem))
            continue
        try:
            record = item.validate(check_geometry=options.check_geometry)
            if has_dos:
                site, total = _features(record, options)
            c = record.crystal
            metadata = json.dumps({**c.metadata, **record.metadata}, default=_json_default, sort_keys=True)
        except InvalidRecordError as err:
            e = err.located(record=item.id)
            part.skipped.append(SkippedRecord(e.file, None if e.record is None else str(e.record), e.problem))
            continue
        part.ids.append(str(record.id))
        part.sources.append(str(record.source))
        part.metadata.append(metadata)
        part.num_atoms.append(c.num_atoms)
        part.lattice.append(c.lattice)
        part.atomic_numbers.append(c.atomic_numbers)
        part.frac_coords.append(c.frac_coords)
        part.energy.append(np.nan if record.energy is None else float(record.energy))
        part.efermi.append(np.nan if record.efermi is None else float(record.efermi))
        part.has_dos.append(has_dos)
        if has_dos:
            part.site_dos.append(site)
            part.total_dos.append(total)
    return part


# ============================================================================ consolidation
def _common_metadata(metadata: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Move metadata entries that are equal for every structure out of the per-structure JSON."""
    dicts = [json.loads(m) for m in metadata]
    if not dicts:
        return metadata, {}
    common = {k: v for k, v in dicts[0].items() if all(k in d and d[k] == v for d in dicts[1:])}
    rest = [json.dumps({k: v for k, v in d.items() if k not in common}, sort_keys=True) for d in dicts]
    return rest, common


def consolidate(
    staging: Path, num_parts: int, out: Path, source: str, has_dos: bool, options: BuildOptions
) -> tuple[DatasetArrays | None, list[SkippedRecord], int, dict[str, Any] | None]:
    """Assemble parts ``0..num_parts-1`` into a store at ``out``. Returns (arrays or None when empty, skipped, read,
    the split deduplication record or None)."""
    from dosmatgen.dos.properties import PROPERTY_UNITS, derived_properties_batch
    from dosmatgen.dos.scaler import PerBinStandardScaler

    missing = sorted(set(range(num_parts)) - finished_parts(staging))
    if missing:
        raise StoreError(f"cannot consolidate {staging}: parts {missing[:10]} are missing")
    ids: list[str] = []
    sources: list[str] = []
    metadata: list[str] = []
    num_atoms, lattice, z, x, energy, efermi, site, total = [], [], [], [], [], [], [], []
    skipped: list[SkippedRecord] = []
    seen: set[str] = set()
    num_read = 0
    for k in range(num_parts):
        p = read_part(part_path(staging, k))
        num_read += int(p["num_read"])
        skipped += p["skipped"]
        n = p["ids"].shape[0]
        off = np.concatenate([[0], np.cumsum(p["num_atoms"])])
        for i in range(n):
            rid = str(p["ids"][i])
            if rid in seen:
                skipped.append(SkippedRecord(None, rid, "duplicate id: an earlier record with this id was stored"))
                continue
            seen.add(rid)
            a, b = int(off[i]), int(off[i + 1])
            ids.append(rid)
            sources.append(str(p["sources"][i]))
            metadata.append(str(p["metadata"][i]))
            num_atoms.append(b - a)
            lattice.append(p["lattice"][i])
            z.append(p["atomic_numbers"][a:b])
            x.append(p["frac_coords"][a:b])
            energy.append(p["energy"][i])
            efermi.append(p["efermi"][i])
            if has_dos:
                site.append(p["site_dos"][a:b])
                total.append(p["total_dos"][i])
    if not ids:
        return None, skipped, num_read, None
    metadata, common = _common_metadata(metadata)
    split = split_codes(ids, options.split_fractions, options.split_salt)
    dedup = None
    if options.dedup_splits:
        split, moves = move_split_twins_to_train([Crystal(zi, xi, li) for zi, xi, li in zip(z, x, lattice)], split)
        dedup = split_moves_summary(moves, ids)
    offsets = np.concatenate([[0], np.cumsum(num_atoms)]).astype(np.int64)
    # the store keeps float16 features: properties and scalers are computed from exactly the stored values
    site16 = np.concatenate(site).astype(np.float16) if has_dos else None
    total16 = np.stack(total).astype(np.float16) if has_dos else None
    data = DatasetArrays(
        ids=ids,
        sources=sources,
        offsets=offsets,
        atomic_numbers=np.concatenate(z).astype(np.int16),
        frac_coords=np.concatenate(x).astype(np.float64),
        lattice=np.stack(lattice).astype(np.float64),
        energy=np.asarray(energy, dtype=np.float64),
        efermi=np.asarray(efermi, dtype=np.float64),
        split=split,
        metadata=metadata,
        site_dos=site16,
        total_dos=total16,
        properties=derived_properties_batch(total16.astype(np.float32)) if has_dos else {},
    )
    attrs: dict[str, Any] = {
        "source": source,
        "grids": {"site": SITE_GRID.to_dict(), "total": TOTAL_GRID.to_dict()},
        "split_rule": {"fractions": list(options.split_fractions), "hash": "sha256(salt + id)[:8] / 2**64", "salt": options.split_salt},
        "split_dedup": dedup,
        "common_metadata": json.loads(json.dumps(common, default=_json_default)),
        "provenance": {"dosmatgen": __version__, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **options.provenance},
    }
    scalers = None
    if has_dos:
        train = data.split_indices("train")
        fit_on = "train"
        if train.size == 0:
            log.warning("the train split is empty (%d structures): scalers are fitted on all structures", len(ids))
            train, fit_on = np.arange(len(ids)), "all"
        scalers = {
            S.SITE_SCALER: PerBinStandardScaler().fit(site16[data.atom_indices(train)].astype(np.float32)).to_arrays(),
            S.TOTAL_SCALER: PerBinStandardScaler().fit(total16[train].astype(np.float32)).to_arrays(),
        }
        attrs["featurizer"] = {
            "site": {"channels": "s+p+d summed", "sigma_ev": options.sigma_ev, "interpolation": "linear, 0 outside", "unit": "states/eV per site"},
            "total": {"per_atom": True, "log1p": False, "sigma_ev": None, "from_sites": options.total_from_sites, "unit": "states/eV/atom"},
            "dtype": "float16",
        }
        attrs["property_units"] = dict(PROPERTY_UNITS)
        attrs["scalers"] = {"kind": "PerBinStandardScaler", "fitted_on": fit_on, "num_structures": int(train.size)}
    write_store(out, data, attrs=attrs, scalers=scalers, overwrite=options.overwrite)
    return data, skipped, num_read, dedup


# ============================================================================ driver
def _chunks(stream: Iterator[Any], size: int) -> Iterator[list[Any]]:
    buf: list[Any] = []
    for item in stream:
        buf.append(item)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def _staged_count(staging: Path, k: int) -> int:
    """How many stream records the staged part ``k`` covers (-1 when its file is unreadable)."""
    try:
        with np.load(part_path(staging, k), allow_pickle=False) as npz:
            return int(npz["num_read"])
    except Exception:  # noqa: BLE001 - an unreadable part is rebuilt
        return -1


def build_dataset(source: str, inputs: Sequence[str | Path], out: str | Path, options: BuildOptions | None = None) -> BuildSummary:
    """Build the store ``out`` from ``inputs`` read with source ``source``; see the module docstring.

    Returns a BuildSummary; ``summary.written`` is False when no record could be stored (then no store is
    written). Raises StoreError when ``out`` exists and ``options.overwrite`` is false.
    """
    options = options or BuildOptions()
    if options.part_size < 1:
        raise ValueError("part_size must be >= 1")
    _reader(source)  # unknown source -> InvalidRecordError before any work
    out = Path(out)
    if out.exists() and not options.overwrite:
        raise StoreError(f"{out} already exists (use --overwrite to replace it)")
    t0 = time.perf_counter()
    has_dos = source_has_dos(source)
    staging = staging_path(out)
    done = prepare_staging(staging, _fingerprint(source, inputs, options))
    reused = 0
    num_parts = 0
    from tqdm.auto import tqdm

    with tqdm(desc=f"build {out.name}", unit="rec", disable=not options.progress, file=sys.stderr) as bar:
        for k, items in enumerate(_chunks(iter_stream(source, inputs, options.reader_options), options.part_size)):
            num_parts = k + 1
            if k in done and _staged_count(staging, k) == len(items):
                reused += 1
            else:  # not built yet (or staged from a stream that differed here): this writer owns part k
                write_part(staging, build_part(k, items, has_dos, options))
            bar.update(len(items))
    # parts beyond the stream's end cannot come from this fingerprint; refuse rather than guess
    extra = sorted(i for i in finished_parts(staging) if i >= num_parts)
    if extra:
        raise StoreError(f"{staging} holds parts {extra[:5]} beyond the {num_parts} parts of this input; delete it and rerun")
    data, skipped, num_read, dedup = consolidate(staging, num_parts, out, source, has_dos, options)
    if not options.keep_staging:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildSummary(
        out=out,
        source=source,
        written=data is not None,
        num_read=num_read,
        num_stored=0 if data is None else data.num_structures,
        num_sites=0 if data is None else data.num_sites,
        has_dos=has_dos,
        split_sizes={} if data is None else {name: int(data.split_indices(name).size) for name in S.SPLIT_NAMES},
        skipped=skipped,
        parts_total=num_parts,
        parts_reused=reused,
        seconds=time.perf_counter() - t0,
        split_dedup=None if dedup is None else {k: dedup[k] for k in ("num_moved", "moved")},
    )


__all__ = ["BuildOptions", "BuildSummary", "build_dataset", "build_part", "consolidate", "iter_stream", "staging_path", "source_has_dos"]
