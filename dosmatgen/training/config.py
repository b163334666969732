"""Training configuration and the YAML run config (``configs/model/*.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.errors import InvalidRecordError
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.training.condition_dropout import ConditionDropoutConfig


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop settings (paper: Adam 1e-3, plateau factor 0.6 / patience 30 / min 1e-4, clip 0.5 by value).

    ``ema_decay`` 0 disables the exponential moving average of the weights.
    """

    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 1000
    lr_factor: float = 0.6
    lr_patience: int = 30
    min_lr: float = 1e-4
    grad_clip: float = 0.5
    grad_clip_mode: str = "value"
    ema_decay: float = 0.0
    seed: int = 0
    val_seed: int = 12345
    max_batches_per_epoch: int = 0
    #: draw t, noise and condition dropout per crystal from (seed, epoch, dataset index) instead of one generator
    #: per batch, so that DDP on any number of workers reproduces a single-process run (keyed_randomness.py)
    per_structure_noise: bool = False

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError("lr must be > 0, batch_size and epochs >= 1")
        if self.grad_clip_mode not in ("value", "norm"):
            raise ValueError(f"grad_clip_mode must be 'value' or 'norm', got {self.grad_clip_mode!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**dict(d))


@dataclass(frozen=True)
class DataConfig:
    """Where the training data lives: a dataset store and the split names for training and validation."""

    store: str | None = None
    train_split: str = "train"
    val_split: str | None = "val"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DataConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown data config keys: {sorted(unknown)}")
        return cls(**dict(d))


@dataclass(frozen=True)
class RunConfig:
    """Everything ``dosmatgen train`` needs: sections ``model``, ``diffusion``, ``conditioning``, ``training``, ``data``."""

    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    conditioning: ConditionDropoutConfig = field(default_factory=ConditionDropoutConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return {k: asdict(getattr(self, k)) for k in ("model", "diffusion", "conditioning", "training", "data")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        unknown = set(d) - {"model", "diffusion", "conditioning", "training", "data"}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        return cls(
            model=DenoiserConfig.from_dict(d.get("model") or {}),
            diffusion=DiffusionConfig.from_dict(d.get("diffusion") or {}),
            conditioning=ConditionDropoutConfig.from_dict(d.get("conditioning") or {}),
            training=TrainConfig.from_dict(d.get("training") or {}),
            data=DataConfig.from_dict(d.get("data") or {}),
        )


def load_run_config(path: str | Path) -> RunConfig:
    """Read a YAML run config; a missing file or bad content raises InvalidRecordError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("config file not found", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidRecordError(f"not valid YAML ({exc})", file=str(p)) from None
    if not isinstance(raw, dict):
        raise InvalidRecordError("a run config must be a mapping of sections", file=str(p))
    try:
        return RunConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidRecordError(str(exc), file=str(p)) from None
