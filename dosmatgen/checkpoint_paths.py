"""Where checkpoints are: a file path, or the name of a checkpoint that ships inside the package.

``resolve_checkpoint("bundled:dosmatgen-small")`` (or just ``"dosmatgen-small"`` when no such file exists)
returns the path of ``dosmatgen/resources/checkpoints/dosmatgen-small.pt``; ``bundled:dossampler-small`` is the
DOSSampler (property-conditional total-DOS generator, :mod:`dosmatgen.dos_sampler`). Anything else is returned as a Path
unchanged, so the loaders report a missing file with the path the user typed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_PREFIX = "bundled:"
#: the shipped total-DOS crystal generator (``cond_mode: total``) that ``dosmatgen design`` uses by default
TOTAL_DOS_GENERATOR = "bundled:dosmatgen-small-total"


def bundled_dir() -> Path:
    return Path(str(resources.files("dosmatgen") / "resources" / "checkpoints"))


def bundled_checkpoints() -> list[str]:
    """Names of the checkpoints that ship with the package."""
    d = bundled_dir()
    return sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    text = str(path_or_name)
    name = text[len(BUNDLED_PREFIX):] if text.startswith(BUNDLED_PREFIX) else text
    candidate = bundled_dir() / f"{name}.pt"
    if (text.startswith(BUNDLED_PREFIX) or not Path(text).exists()) and "/" not in name and candidate.is_file():
        return candidate
    return Path(text)
