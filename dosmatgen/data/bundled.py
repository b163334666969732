"""The dataset store shipped with dosmatgen (``dosmatgen/resources/data/gpaw-v2.zarr``; provenance in the README next to it)."""

from __future__ import annotations

from pathlib import Path

from dosmatgen.errors import StoreError

BUNDLED_NAME = "gpaw-v2.zarr"


def bundled_dataset_path() -> Path:
    """Path of the bundled GPAW dataset store (3,020 structures, 12,211 sites); StoreError if the install lacks it."""
    path = Path(__file__).resolve().parent.parent / "resources" / "data" / BUNDLED_NAME
    if not (path / "zarr.json").is_file():
        raise StoreError(f"the bundled dataset is missing from this installation (expected {path})")
    return path
