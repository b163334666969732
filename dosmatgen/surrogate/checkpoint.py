"""Surrogate checkpoints: one ``torch.save`` file with plain-Python metadata, loadable with ``weights_only=True``.

Layout (a dict): ``format`` = "dosmatgen-surrogate", ``version`` = 1, ``config`` (SurrogateConfig as dict),
``state_dict``, ``scaler`` (the PerBinStandardScaler of the target features, as dict: predictions are unscaled
with it), ``grid`` (EnergyGrid dict of the target), ``info`` (training provenance: store, split sizes, seed,
epochs, metrics).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.dos.scaler import PerBinStandardScaler
from dosmatgen.errors import CheckpointError
from dosmatgen.surrogate.config import SurrogateConfig
from dosmatgen.surrogate.model import DOSSurrogate

FORMAT = "dosmatgen-surrogate"
VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: DOSSurrogate,
    scaler: PerBinStandardScaler,
    grid: EnergyGrid,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "scaler": scaler.to_dict(),
        "grid": grid.to_dict(),
        "info": dict(info or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (checkpoint hash recorded in evaluation reports)."""
    h = hashlib.sha256()
    with open(resolve_checkpoint(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[DOSSurrogate, PerBinStandardScaler, EnergyGrid, dict[str, Any]]:
    """Load (model in eval mode, scaler, grid, info). Raises CheckpointError for a missing or foreign file."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"no surrogate checkpoint at {path} (no such file)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors of any kind mean "not a checkpoint"
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dosmatgen surrogate checkpoint (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has surrogate checkpoint version {payload.get('version')!r}; this dosmatgen reads {VERSION}")
    try:
        config = SurrogateConfig.from_dict(payload["config"])
        model = DOSSurrogate(config)
        model.load_state_dict(payload["state_dict"])
        scaler = PerBinStandardScaler.from_dict(payload["scaler"])
        grid = EnergyGrid.from_dict(payload["grid"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is a corrupt surrogate checkpoint: {err}") from None
    if scaler.n_bins != config.out_dim or grid.n != config.out_dim:
        raise CheckpointError(f"{path}: scaler ({scaler.n_bins}) / grid ({grid.n}) bins do not match the model output ({config.out_dim})")
    model.eval()
    return model.to(map_location), scaler, grid, dict(payload.get("info", {}))
