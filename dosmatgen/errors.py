"""Exceptions that carry enough context for a user to fix their input."""

from __future__ import annotations


class DosmatgenError(Exception):
    """Base class of every error dosmatgen raises on purpose."""


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
