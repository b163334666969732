"""Training of the time-dependent DOS regressor g(y | S_t, t) on noisy crystals (classifier guidance).

Each step draws t uniform in 1..T per crystal, noises the clean crystal with the SAME forward process as the
denoiser (``JointDiffusion.q_sample``), and fits the scaled site DOS of every atom (L1 or MSE). The YAML config has
sections ``regressor`` (:class:`RegressorConfig`), ``diffusion`` (must equal the denoiser's), ``training``
(:class:`~dosmatgen.training.config.TrainConfig`) and ``data`` (:class:`~dosmatgen.training.config.DataConfig`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch.utils.data import Dataset

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.regressor.checkpoint import load_regressor
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.regressor.model import NoisyDOSRegressor
from dosmatgen.regressor.task import BEST, LAST, RegressorTask, regressor_loss
from dosmatgen.training.checkpoint import config_differences, scalers_to_tensors
from dosmatgen.training.config import DataConfig, TrainConfig
from dosmatgen.training.distributed import SingleProcess
from dosmatgen.training.engine import EngineSettings, run_training
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state

__all__ = ["BEST", "LAST", "METRICS", "RegressorRunConfig", "RegressorTrainResult", "load_regressor_run_config",
           "regressor_loss", "train_regressor"]

METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class RegressorRunConfig:
    regressor: RegressorConfig = field(default_factory=RegressorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RegressorRunConfig":
        unknown = set(d) - {"regressor", "diffusion", "training", "data"}
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)} (expected regressor, diffusion, training, data)")
        return cls(
            regressor=RegressorConfig.from_dict(d.get("regressor") or {}),
            diffusion=DiffusionConfig.from_dict(d.get("diffusion") or {}),
            training=TrainConfig.from_dict(d.get("training") or {}),
            data=DataConfig.from_dict(d.get("data") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: asdict(getattr(self, k)) for k in ("regressor", "diffusion", "training", "data")}


def load_regressor_run_config(path: str | Path) -> RegressorRunConfig:
    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("config file not found", file=str(p))
    try:
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError("a config must be a mapping of sections")
        return RegressorRunConfig.from_dict(raw)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise InvalidRecordError(str(exc), file=str(p)) from None


@dataclass(frozen=True)
class RegressorTrainResult:
    out_dir: Path
    epochs: int
    best_val: float | None
    last_metrics: dict[str, Any]

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / BEST


def train_regressor(
    config: RegressorRunConfig,
    train_dataset: Dataset,
    val_dataset: Dataset | None,
    out_dir: str | Path,
    *,
    scalers: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    epochs: int | None = None,
    init_from: str | Path | None = None,
    data: Mapping[str, Any] | None = None,
    resume: bool = False,
) -> RegressorTrainResult:
    """Adam + ReduceLROnPlateau + gradient clipping; writes ``last.pt``, ``best.pt`` (lowest validation loss, or
    training loss without a validation set) and ``metrics.jsonl`` into ``out_dir``. ``init_from`` (a regressor
    checkpoint or ``bundled:NAME`` with the same regressor and diffusion configs) starts from its weights
    (fine-tuning); it is recorded as ``metrics["init_from"]`` in the checkpoints. The checkpoints also record where the
    model learned, ``config.data`` updated by ``data`` (e.g. ``{"store": the store actually read}``), as strings, so
    that ``dosmatgen evaluate`` can refuse to score on a training split. ``resume`` continues the interrupted run in
    ``out_dir`` from its ``train_state.pt`` (same config except ``training.epochs``, same data, same kind of device);
    on CPU with the same number of threads the result equals an uninterrupted run's."""
    tc = config.training
    started = time.perf_counter()
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty")
    out = Path(out_dir)
    recorded = {k: (None if v is None else str(v)) for k, v in {**asdict(config.data), **dict(data or {})}.items()}
    state = read_train_state(out, "regressor") if resume else None
    if state is not None and init_from is not None:
        raise CheckpointError(f"{out / TRAIN_STATE}: --init-from starts a new run; it cannot be combined with --resume")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        model = NoisyDOSRegressor(config.regressor)
    warm: dict[str, str] = {}
    if state is None and init_from is not None:
        start = load_regressor(init_from)
        for name, have, want in (("regressor", start.config, config.regressor), ("diffusion", start.diffusion_config, config.diffusion)):
            if have != want:
                diff = config_differences(have.to_dict(), want.to_dict())
                raise CheckpointError(f"{resolve_checkpoint(init_from)}: {name} config does not match ({'; '.join(diff)})")
        model.load_state_dict(start.state)
        warm = {"init_from": str(resolve_checkpoint(init_from))}
    task = RegressorTask(config, model, train_dataset, val_dataset, device=device, scalers=scalers_to_tensors(scalers),
                         data=recorded, warm=warm)
    total_epochs = int(epochs or tc.epochs)
    # the regressor keeps no EMA of its weights (training.ema_decay is the denoiser's)
    settings = EngineSettings.from_train_config(tc, total_epochs, progress=progress, ema_decay=0.0)
    result = run_training(task, settings, out, hooks=SingleProcess(device), state=state, state_path=out / TRAIN_STATE,
                          started=started)
    return RegressorTrainResult(out, total_epochs, result.best_val, result.last_metrics)
