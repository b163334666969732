"""Helpers shared by the source readers: locating errors and validating records."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError

#: What every source reader yields: a valid record, or the located error of one bad record.
RecordOrError = DOSRecord | InvalidRecordError

#: Exceptions that third-party parsers (pymatgen, ASE, numpy) raise on bad data. Converted to located
#: InvalidRecordErrors; anything else (a bug, MemoryError, KeyboardInterrupt) propagates.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    AssertionError,
    ArithmeticError,
    UnicodeDecodeError,
    OSError,
    SyntaxError,  # xml.etree ParseError and lxml XMLSyntaxError derive from it
)

T = TypeVar("T")


def describe(exc: BaseException) -> str:
    """One line describing a third-party exception (its type and message)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, KeyError):
        return f"missing field {msg}"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def locate(exc: BaseException, *, file: str | Path | None, record: str | int | None, context: str = "") -> InvalidRecordError:
    """Turn ``exc`` into an InvalidRecordError naming ``file`` and ``record`` (keeping a location it already has)."""
    file_s = None if file is None else str(file)
    if isinstance(exc, InvalidRecordError):
        return exc.located(file=file_s, record=record)
    problem = f"{context}: {describe(exc)}" if context else describe(exc)
    return InvalidRecordError(problem, file=file_s, record=record)


def attempt(build: Callable[[], DOSRecord], *, file: str | Path | None, record: str | int | None,
            context: str = "", validate: bool = True, check_geometry: bool = True) -> RecordOrError:
    """Run ``build()`` and validate its record; return the record or a located InvalidRecordError."""
    try:
        rec = build()
        if validate:
            rec.validate(file=None if file is None else str(file), check_geometry=check_geometry)
        return rec
    except InvalidRecordError as exc:
        return locate(exc, file=file, record=record)
    except PARSE_ERRORS as exc:
        return locate(exc, file=file, record=record, context=context)


def require_exists(path: str | Path) -> Path:
    """Return ``path`` as a Path, raising InvalidRecordError (whole input unusable) when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise InvalidRecordError("no such file or directory", file=str(p))
    return p
