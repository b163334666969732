"""Exceptions that carry enough context for a user to fix their input."""

from __future__ import annotations

import re
from typing import Any, Mapping

#: how a message names a field of a request or config: ``{t_start}``
_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def name_fields(template: str, names: Mapping[str, str]) -> str:
    """``template`` with every ``{field}`` spelled as ``names[field]`` (the field name itself when absent)."""
    return _FIELD.sub(lambda m: names.get(m[1], m[1]), template)


class DosmatgenError(Exception):
    """Base class of every error dosmatgen raises on purpose."""

    #: (template, constructor keywords) of an error made by :func:`field_error`
    field_template: tuple[str, dict[str, Any]] | None = None

    def with_names(self, names: Mapping[str, str]) -> str:
        """The message with the fields it names spelled by ``names`` (the CLI passes its flags, so a CLI user reads
        ``--t-start`` where a config or Python user reads ``t_start``)."""
        if self.field_template is None:
            return str(self)
        template, kwargs = self.field_template
        return str(type(self)(name_fields(template, names), **kwargs))


def field_error(cls: type[DosmatgenError], template: str, **kwargs: Any) -> DosmatgenError:
    """An error of class ``cls`` whose message names request/config fields as ``{field}``: its ``str()`` names
    the fields as written in a config or a Python call; :meth:`DosmatgenError.with_names` spells them otherwise."""
    err = cls(name_fields(template, {}), **kwargs)
    err.field_template = (template, dict(kwargs))
    return err


class InvalidRecordError(DosmatgenError):
    """A single input record (structure or DOS) is unusable.

    The message names the file, the record and the problem, e.g.
    ``data/x.json [record 3 'mp-149']: site DOS has 300 energies, expected 401``.
    """

    def __init__(self, problem: str, *, file: str | None = None, record: str | int | None = None):
        self.problem = problem
        self.file = file
        self.record = record
        where = []
        if file is not None:
            where.append(str(file))
        if record is not None:
            where.append(f"[record {record}]")
        prefix = " ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)

    def located(self, *, file: str | None = None, record: str | int | None = None) -> "InvalidRecordError":
        """Return a copy with the location filled in where it was missing."""
        return InvalidRecordError(
            self.problem,
            file=self.file if self.file is not None else file,
            record=self.record if self.record is not None else record,
        )


class StoreError(DosmatgenError):
    """A Zarr store is missing, corrupt or of an unsupported schema."""


class CheckpointError(DosmatgenError):
    """A checkpoint is missing, corrupt or does not match the requested configuration."""
