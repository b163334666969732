"""Read and write crystal structure files: CIF (one or several data blocks), folders and zips of CIFs, extxyz.

Reading is per record: the ``iter_*`` functions yield ``(id, Crystal | InvalidRecordError)`` so that one
malformed entry (a bad CIF in a zip, a broken extxyz frame) is reported with its file and record while the
others still load. :func:`read_structures` is the strict variant that raises the first error.

Record ids:

* a CIF file with one data block: the file name without ``.cif``; with several blocks: the block names
  (``data_<name>``) when they are unique, else ``<stem>:<i>``;
* a folder of CIFs: the path relative to the folder without ``.cif`` (``sub/x`` for ``sub/x.cif``);
* a zip of CIFs (e.g. MatterGen's ``generated_crystals_cif.zip``): the entry name without ``.cif``;
* extxyz: ``atoms.info["id"]`` when present, else ``<stem>:<frame index>``.

Each crystal's ``metadata`` holds ``file`` and ``record`` (where it was read from).
Errors carry ``file`` = the file (or zip) path and ``record`` = the id, or the zip entry name / frame index.

CIF stores lattice lengths and angles, not the lattice matrix, and pymatgen's parser groups sites by
species: a CIF round trip keeps the species, fractional coordinates (to 1e-8) and lattice parameters, but
not the lattice orientation or the site order. extxyz keeps both (to about 1e-8).

Writing is atomic (temporary file, then rename): a reader never sees half a file.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.atomic import atomic_write

#: One item of a structure reader: the record id and the crystal, or the located error for that record.
StructureItem = tuple[str, "Crystal | InvalidRecordError"]

CIF_SUFFIXES = (".cif",)
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")
ZIP_SUFFIXES = (".zip",)

# exceptions third-party parsers raise on bad content
_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError, ArithmeticError, UnicodeDecodeError)


def _problem(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------- conversion
def crystal_from_structure(structure, metadata: dict | None = None) -> Crystal:
    """A pymatgen Structure as a Crystal, with unknown elements (pymatgen dummy species such as ``Xx``) rejected."""
    from pymatgen.core.periodic_table import DummySpecies

    for i, site in enumerate(structure):
        for sp in site.species:
            if isinstance(sp, DummySpecies):
                raise InvalidRecordError(f"unknown element {sp.symbol!r} at site {i}")
    return Crystal.from_pymatgen(structure, metadata)


def _block_name(rid: str) -> str:
    """A CIF data-block name for a record id (no whitespace; CIF forbids it)."""
    name = re.sub(r"\s+", "_", str(rid).strip())
    return name or "structure"


def crystal_to_cif(crystal: Crystal, name: str | None = None) -> str:
    """CIF text (P1, all sites listed) of ``crystal``, via pymatgen's CifWriter; ``name`` sets the data block."""
    from pymatgen.io.cif import CifWriter

    text = str(CifWriter(crystal.to_pymatgen()))
    if name is not None:
        text = re.sub(r"^data_.*$", f"data_{_block_name(name)}", text, count=1, flags=re.MULTILINE)
    return text


# ----------------------------------------------------------------------------------------------------- CIF
def iter_cif_text(text: str, base_id: str, *, file: str, record: str) -> Iterator[StructureItem]:
    """Yield ``(id, Crystal | InvalidRecordError)`` per data block of CIF ``text``.

    ``base_id`` is the id of a single-block text; ``file`` and ``record`` locate errors (e.g. a CSV row).
    """
    from pymatgen.io.cif import CifFile, CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            blocks = list(CifFile.from_str(text).data.items())
        except _PARSE_ERRORS as exc:
            yield base_id, InvalidRecordError(f"malformed CIF: {_problem(exc)}", file=file, record=record)
            return
        if not blocks:
            yield base_id, InvalidRecordError("malformed CIF: no data block", file=file, record=record)
            return
        names = [name for name, _ in blocks]
        unique = len(set(names)) == len(names)
        for i, (name, block) in enumerate(blocks):
            if len(blocks) == 1:
                rid, where = base_id, record
            else:
                rid = name if unique else f"{base_id}:{i}"
                where = f"{record} block {name!r}"
            try:
                structures = CifParser.from_str(str(block)).parse_structures(primitive=False, on_error="raise")
                if len(structures) != 1:
                    raise InvalidRecordError(f"data block holds {len(structures)} structures, expected 1")
                yield rid, crystal_from_structure(structures[0], {"file": file, "record": where})
            except InvalidRecordError as exc:
                yield rid, exc.located(file=file, record=where)
            except _PARSE_ERRORS as exc:
                yield rid, InvalidRecordError(f"malformed CIF: {_problem(exc)}", file=file, record=where)


def _strip_suffix(name: str, suffixes: Sequence[str]) -> str:
    for s in suffixes:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def _read_text(data: bytes, *, file: str, record: str) -> str | InvalidRecordError:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte string
            return InvalidRecordError(f"not a text file: {exc}", file=file, record=record)


def _iter_cif_zip(path: Path) -> Iterator[StructureItem]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidRecordError(f"corrupt or unreadable zip: {_problem(exc)}", file=str(path)) from None
    with archive:
        entries = [
            info for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith(CIF_SUFFIXES) and not info.filename.startswith("__MACOSX/")
        ]
        if not entries:
            raise InvalidRecordError("zip holds no .cif files", file=str(path))
        for info in entries:
            rid = _strip_suffix(info.filename, CIF_SUFFIXES)
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # e.g. CRC error in one entry
                yield rid, InvalidRecordError(f"unreadable zip entry: {_problem(exc)}", file=str(path), record=info.filename)
                continue
            text = _read_text(data, file=str(path), record=info.filename)
            if isinstance(text, InvalidRecordError):
                yield rid, text
                continue
            yield from iter_cif_text(text, rid, file=str(path), record=info.filename)


def iter_cif(path: str | Path) -> Iterator[StructureItem]:
    """Yield ``(id, Crystal | InvalidRecordError)`` for a .cif file, a folder of .cif files (recursive) or a zip of them.

    Raises InvalidRecordError only when the whole input is unusable (missing path, corrupt zip, no CIFs).
    """
    p = Path(path)
    if not p.exists():
        raise InvalidRecordError("no such file or directory", file=str(p))
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(CIF_SUFFIXES))
        if not files:
            raise InvalidRecordError("folder holds no .cif files", file=str(p))
        for f in files:
            rid = _strip_suffix(f.relative_to(p).as_posix(), CIF_SUFFIXES)
            yield from _iter_cif_file(f, rid)
    elif p.name.lower().endswith(ZIP_SUFFIXES):
        yield from _iter_cif_zip(p)
    else:
        yield from _iter_cif_file(p, _strip_suffix(p.name, CIF_SUFFIXES))


def _iter_cif_file(path: Path, rid: str) -> Iterator[StructureItem]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield rid, InvalidRecordError(f"unreadable file: {_problem(exc)}", file=str(path), record=rid)
        return
    text = _read_text(data, file=str(path), record=rid)
    if isinstance(text, InvalidRecordError):
        yield rid, text
        return
    yield from iter_cif_text(text, rid, file=str(path), record=rid)


# -------------------------------------------------------------------------------------------------- extxyz
def _split_xyz_frames(text: str) -> Iterator[tuple[int, str | InvalidRecordError]]:
    """Split (ext)xyz text into frames by their atom-count lines; a broken count line ends the file."""
    lines = text.splitlines(keepends=True)
    i, frame = 0, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
            if n < 0:
                raise ValueError(n)
        except ValueError:
            yield frame, InvalidRecordError(
                f"line {i + 1}: expected an atom count, got {lines[i].strip()[:40]!r}; the rest of the file is not read"
            )
            return
        chunk = lines[i : i + n + 2]
        if len(chunk) < n + 2:
            yield frame, InvalidRecordError(f"truncated frame: {n} atoms announced on line {i + 1}, file ends early")
            return
        yield frame, "".join(chunk)
        i += n + 2
        frame += 1


def iter_extxyz(path: str | Path) -> Iterator[StructureItem]:
    """Yield ``(id, Crystal | InvalidRecordError)`` per frame of an extxyz file (frames must be periodic)."""
    import ase.io

    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("no such file", file=str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRecordError(f"unreadable extxyz: {_problem(exc)}", file=str(p)) from None
    stem = _strip_suffix(p.name, EXTXYZ_SUFFIXES)
    any_frame = False
    for frame, chunk in _split_xyz_frames(text):
        any_frame = True
        rid = f"{stem}:{frame}"
        if isinstance(chunk, InvalidRecordError):
            yield rid, chunk.located(file=str(p), record=f"frame {frame}")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms = ase.io.read(io.StringIO(chunk), format="extxyz")
            where = f"frame {frame}"
            if atoms.info.get("id") is not None:
                rid = str(atoms.info["id"])
                where = f"frame {frame} ({rid})"
            yield rid, Crystal.from_ase(atoms, {"file": str(p), "record": where})
        except InvalidRecordError as exc:
            yield rid, exc.located(file=str(p), record=f"frame {frame} ({rid})")
        except _PARSE_ERRORS as exc:
            yield rid, InvalidRecordError(f"malformed extxyz frame: {_problem(exc)}", file=str(p), record=f"frame {frame}")
    if not any_frame:
        raise InvalidRecordError("extxyz file holds no frames", file=str(p))


# ----------------------------------------------------------------------------------------------- dispatch
def iter_structures(path: str | Path) -> Iterator[StructureItem]:
    """Dispatch on the path: folder or ``.cif`` or ``.zip`` -> :func:`iter_cif`; ``.extxyz``/``.xyz`` -> :func:`iter_extxyz`."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith(EXTXYZ_SUFFIXES):
        yield from iter_extxyz(p)
    elif p.is_dir() or name.endswith(CIF_SUFFIXES + ZIP_SUFFIXES):
        yield from iter_cif(p)
    else:
        raise InvalidRecordError("unknown structure format: expected .cif, .zip (of CIFs), .extxyz/.xyz or a folder", file=str(p))


def read_structures(path: str | Path) -> tuple[list[str], list[Crystal]]:
    """Strict reader: ``(ids, crystals)`` of every record, raising the first record's InvalidRecordError."""
    ids, crystals = [], []
    for rid, item in iter_structures(path):
        if isinstance(item, InvalidRecordError):
            raise item
        ids.append(rid)
        crystals.append(item)
    return ids, crystals


# ------------------------------------------------------------------------------------------------ writing
def _ids_for(crystals: Sequence[Crystal], ids: Sequence[str] | None) -> list[str]:
    if ids is None:
        return [f"structure_{i}" for i in range(len(crystals))]
    ids = [str(x) for x in ids]
    if len(ids) != len(crystals):
        raise ValueError(f"{len(ids)} ids for {len(crystals)} crystals")
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    return ids


def _entry_name(rid: str, keep_folders: bool = False) -> str:
    """A safe relative file name ``<id>.cif`` (odd characters replaced; ``/`` kept as folders if ``keep_folders``)."""
    parts = rid.split("/") if keep_folders else [rid]
    safe = [re.sub(r"[^A-Za-z0-9._+=@-]", "_", part).lstrip(".") or "_" for part in parts]
    return "/".join(safe) + ".cif"


def write_cif(path: str | Path, crystals: Sequence[Crystal], ids: Sequence[str] | None = None) -> Path:
    """Write all crystals into one CIF file, one data block each (named by ``ids``), atomically."""
    names = _ids_for(crystals, ids)
    with atomic_write(path) as fh:
        fh.write("\n".join(crystal_to_cif(c, name) for c, name in zip(crystals, names)))
    return Path(path)


def write_cif_zip(path: str | Path, crystals: Sequence[Crystal], ids: Sequence[str] | None = None) -> Path:
    """Write a zip holding ``<id>.cif`` per crystal (like MatterGen's ``generated_crystals_cif.zip``), atomically."""
    names = _ids_for(crystals, ids)
    entries = [_entry_name(n, keep_folders=True) for n in names]
    if len(set(entries)) != len(entries):
        raise ValueError("ids map to clashing file names")
    with atomic_write(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for c, name, entry in zip(crystals, names, entries):
                archive.writestr(entry, crystal_to_cif(c, name))
    return Path(path)


def write_cif_folder(folder: str | Path, crystals: Sequence[Crystal], ids: Sequence[str] | None = None) -> Path:
    """Write ``<folder>/<id>.cif`` per crystal, each file atomically."""
    names = _ids_for(crystals, ids)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for c, name in zip(crystals, names):
        with atomic_write(folder / _entry_name(name)) as fh:
            fh.write(crystal_to_cif(c, name))
    return folder


def write_extxyz(path: str | Path, crystals: Sequence[Crystal], ids: Sequence[str] | None = None) -> Path:
    """Write all crystals as frames of one extxyz file (``id`` in each frame's info line), atomically."""
    import ase.io

    names = _ids_for(crystals, ids)
    images = []
    for c, name in zip(crystals, names):
        atoms = c.to_ase()
        atoms.info["id"] = name
        images.append(atoms)
    with atomic_write(path) as fh:
        ase.io.write(fh, images, format="extxyz")
    return Path(path)


def write_structures(path: str | Path, crystals: Iterable[Crystal], ids: Sequence[str] | None = None) -> Path:
    """Dispatch on the suffix: ``.cif``, ``.zip`` (of CIFs), ``.extxyz``/``.xyz``; anything else is a folder of CIFs."""
    crystals = list(crystals)
    name = Path(path).name.lower()
    if name.endswith(CIF_SUFFIXES):
        return write_cif(path, crystals, ids)
    if name.endswith(ZIP_SUFFIXES):
        return write_cif_zip(path, crystals, ids)
    if name.endswith(EXTXYZ_SUFFIXES):
        return write_extxyz(path, crystals, ids)
    return write_cif_folder(path, crystals, ids)
