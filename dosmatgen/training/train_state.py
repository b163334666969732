"""The resumable state of a training run (``OUT/train_state.pt``), written after every finished epoch.

Each trainer decides what goes in the state and which differences refuse a resume; this module only writes it
atomically and reads it back with clear errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dosmatgen.errors import CheckpointError

TRAIN_STATE = "train_state.pt"


def save_train_state(out: Path, state: dict[str, Any]) -> None:
    """Write ``out/train_state.pt`` through a temporary file, so a kill never leaves half a state."""
    tmp = out / (TRAIN_STATE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out / TRAIN_STATE)


def read_train_state(out: Path, run_kind: str) -> dict[str, Any]:
    """The state saved in ``out``; CheckpointError naming the file when there is none or it is unreadable."""
    path = out / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"{path}: nothing to resume (no interrupted {run_kind} run in {out})")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"{path}: unreadable training state ({exc})") from None
