"""What an evaluation report records about its inputs: file hashes, versions, time."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen import __version__
from dosmatgen.surrogate.checkpoint import file_sha256

__all__ = ["file_sha256", "file_record", "software_versions", "utc_now"]


def file_record(path: str | Path | None) -> dict[str, Any] | None:
    """``{"path": absolute path, "sha256": hex digest, "bytes": size}`` of a file, or None for no file."""
    if path is None:
        return None
    p = resolve_checkpoint(path).resolve()
    return {"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """Versions of dosmatgen, Python and the libraries whose behaviour changes the numbers."""
    return {
        "dosmatgen": __version__,
        "python": platform.python_version(),
        **{name: _version(name) for name in ("torch", "torch_geometric", "numpy", "scipy", "pymatgen", "smact")},
    }


def utc_now() -> str:
    """The current time, ISO 8601 in UTC (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
