"""Completed units of work, one small JSON marker file per unit.

Layout under the run directory::

    manifest/<stage>/<target>/<unit>.json   # the unit is complete (written last, atomically)
    failures/<stage>/<target>/<unit>.json   # the last failure of a unit that is not complete

A marker is written to a temporary file in the same folder and renamed into place (atomic on POSIX),
so concurrent writers never edit the same file and a crash never leaves half a marker: a unit whose data
was partly written but whose marker is missing counts as not done and is redone wholly.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dosmatgen.errors import StoreError


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise StoreError(f"corrupt manifest marker {path}: {exc}") from exc


class Manifest:
    """Marker files of completed and failed units below ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # --------------------------------------------------------------- paths
    def _path(self, kind: str, stage: str, target: str, unit: int | str) -> Path:
        return self.root / kind / stage / target / f"{unit}.json"

    # ---------------------------------------------------------- completion
    def is_done(self, stage: str, target: str, unit: int | str) -> bool:
        return self._path("manifest", stage, target, unit).is_file()

    def mark_done(self, stage: str, target: str, unit: int | str, **info: Any) -> None:
        """Record that ``unit`` of ``stage`` is complete (call after all its data is written)."""
        payload = {"stage": stage, "target": target, "unit": unit, "time": time.time(), "host": os.uname().nodename, **info}
        _atomic_write_json(self._path("manifest", stage, target, unit), payload)
        failed = self._path("failures", stage, target, unit)
        if failed.exists():
            failed.unlink(missing_ok=True)

    def done_info(self, stage: str, target: str, unit: int | str) -> dict[str, Any]:
        path = self._path("manifest", stage, target, unit)
        if not path.is_file():
            raise StoreError(f"unit {stage}/{target}/{unit} is not complete")
        return _read_json(path)

    def done_units(self, stage: str, target: str) -> set[str]:
        folder = self.root / "manifest" / stage / target
        if not folder.is_dir():
            return set()
        return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".")}

    def pending(self, stage: str, target: str, units: range | list[int]) -> list[int]:
        done = self.done_units(stage, target)
        return [u for u in units if str(u) not in done]

    def invalidate(self, stage: str, target: str, unit: int | str) -> None:
        """Forget that a unit is done (so that it is redone)."""
        self._path("manifest", stage, target, unit).unlink(missing_ok=True)

    # ------------------------------------------------------------ failures
    def record_failure(self, stage: str, target: str, unit: int | str, error: str, **info: Any) -> int:
        """Record a failed attempt; return the number of failed attempts so far."""
        path = self._path("failures", stage, target, unit)
        attempts = int(_read_json(path).get("attempts", 0)) + 1 if path.is_file() else 1
        payload = {"stage": stage, "target": target, "unit": unit, "error": error, "attempts": attempts, "time": time.time(), **info}
        _atomic_write_json(path, payload)
        return attempts

    def failures(self, stage: str, target: str | None = None) -> list[dict[str, Any]]:
        base = self.root / "failures" / stage
        if target is not None:
            base = base / target
        if not base.is_dir():
            return []
        return [_read_json(p) for p in sorted(base.rglob("*.json")) if not p.name.startswith(".")]
