"""The resumable state of a training run (``OUT/train_state.pt``), one format for every model, written after
every finished epoch by :mod:`dosmatgen.training.engine`.

A state holds the epoch counters, the best monitored value, the time spent, the weights (raw and EMA), optimiser and
scheduler states, the random generators of every rank (with the device each lives on), what must stay the same for
a resume (``identity``, given by the model's task) and the task's own extras. It is written through a temporary
file, so a kill never leaves half a state, and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dosmatgen.errors import CheckpointError

TRAIN_STATE = "train_state.pt"
STATE_FORMAT = "dosmatgen-train-state"
STATE_FORMAT_VERSION = 2


@dataclass
class TrainState:
    kind: str
    epoch: int
    global_step: int
    best_val: float | None
    best_epoch: int
    seconds: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    ema: dict[str, torch.Tensor] | None = None
    #: one {generator name: state} per rank
    rng: list[dict[str, torch.Tensor]] = field(default_factory=list)
    #: {generator name: device type} (a generator's state belongs to its kind of device)
    devices: dict[str, str] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, **self.__dict__}


def save_train_state(out: Path, state: TrainState) -> Path:
    """Write ``out/train_state.pt`` through a temporary file in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TRAIN_STATE + ".", suffix=".tmp", dir=out)
    os.close(fd)
    try:
        torch.save(state.to_payload(), tmp)
        os.replace(tmp, out / TRAIN_STATE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out / TRAIN_STATE


def read_train_state(folder: Path, run_kind: str) -> TrainState:
    """The state saved in ``folder``; CheckpointError naming the file when there is none, it is unreadable, it is of
    an older format, or it belongs to another kind of model."""
    path = Path(folder) / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"{path} not found: nothing to resume (no interrupted {run_kind} run in {folder})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged or foreign file
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: unreadable training state ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: a training state of an older dosmatgen (not the {STATE_FORMAT!r} format); "
                              "it cannot be resumed: train again, or resume with the dosmatgen version that wrote it")
    if payload.get("format_version") != STATE_FORMAT_VERSION:
        raise CheckpointError(f"{path}: training state format version {payload.get('format_version')}, this dosmatgen "
                              f"reads {STATE_FORMAT_VERSION}")
    if payload.get("kind") != run_kind:
        raise CheckpointError(f"{path}: the training state of a {payload.get('kind')} run, not of a {run_kind} run")
    fields_ = {k: v for k, v in payload.items() if k not in ("format", "format_version")}
    try:
        return TrainState(**fields_)
    except TypeError as exc:
        raise CheckpointError(f"{path}: incomplete training state ({exc})") from None
