"""``dosmatgen train`` in one process: the denoiser's task (:mod:`dosmatgen.training.denoiser_task`) run by the
training engine (:mod:`dosmatgen.training.engine`) on CPU or CUDA.

Randomness (exact resume): the model is initialised from ``seed``; each epoch's data order comes from a
generator seeded with (seed, epoch); t, noise and condition dropout come from one training generator whose
state is saved in ``train_state.pt`` after every epoch; validation uses its own fixed seed. Resuming from the
state of epoch k therefore reproduces an uninterrupted run bit for bit on the same device.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.utils.data import Dataset

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.errors import CheckpointError
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.training.checkpoint import scalers_to_tensors
from dosmatgen.training.config import RunConfig
from dosmatgen.training.denoiser_task import BEST_CHECKPOINT, LAST_CHECKPOINT, DenoiserTask, num_atoms_counts
from dosmatgen.training.distributed import SingleProcess
from dosmatgen.training.engine import METRICS_LOG, EngineSettings, run_training
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state
from dosmatgen.training.warm_start import scaler_shift, warm_start_weights

__all__ = ["BEST_CHECKPOINT", "LAST_CHECKPOINT", "METRICS_LOG", "TrainResult", "build_model", "num_atoms_counts",
           "read_metrics", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    epochs_completed: int
    global_step: int
    best_val: float | None
    last_metrics: dict[str, Any]

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / BEST_CHECKPOINT


def build_model(config: RunConfig, init_from: str | Path | None = None) -> CSPNetDenoiser:
    """A freshly initialised denoiser; the initialisation depends only on ``config.training.seed``. With
    ``init_from`` (a checkpoint path or ``bundled:NAME``) it starts from that checkpoint's weights instead
    (:mod:`dosmatgen.training.warm_start`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.training.seed)
        model = CSPNetDenoiser(config.model)
    if init_from is not None:
        model.load_state_dict(warm_start_weights(init_from, config))
    return model


def train(
    config: RunConfig,
    train_dataset: Dataset,
    val_dataset: Dataset | None,
    out_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    scalers: Mapping[str, Any] | None = None,
    progress: bool = True,
    epochs: int | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train a denoiser, writing ``last.pt``, ``best.pt``, ``metrics.jsonl`` and ``train_state.pt`` into ``out_dir``.

    Args:
        config: model, diffusion, conditioning and training settings.
        train_dataset, val_dataset: datasets of torch_geometric ``Data`` (see ``CrystalDOSDataset``).
        resume: continue from ``out_dir/train_state.pt`` (its model and diffusion configs must equal ``config``'s).
            Without it an ``out_dir`` that already holds a checkpoint is refused (CheckpointError).
        scalers: the DOS scalers the data were standardised with (stored in the checkpoint).
        epochs: total number of epochs to reach (default ``config.training.epochs``).
        init_from: start a new run from this checkpoint's weights (fine-tuning; see
            :mod:`dosmatgen.training.warm_start`); recorded in the checkpoints as ``training["init_from"]``.
            Not with ``resume``.
    """
    tc = config.training
    total_epochs = int(epochs if epochs is not None else tc.epochs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hooks = SingleProcess(device)
    last_path = out / LAST_CHECKPOINT
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty")
    if resume and init_from is not None:
        raise ValueError("init_from starts a new run; it cannot be combined with resume")

    state, record = None, {"data": asdict(config.data)}  # the splits travel with the weights
    stored_scalers = scalers_to_tensors(scalers)
    if resume:
        if not (out / TRAIN_STATE).is_file() and last_path.is_file():
            raise CheckpointError(f"{out / TRAIN_STATE} not found: {last_path} comes from a dosmatgen that kept no "
                                  f"training state, so that run cannot be resumed exactly; start a new run from its "
                                  f"weights with --init-from {last_path}")
        state = read_train_state(out, "denoiser")
    else:
        if last_path.exists():
            raise CheckpointError(f"{out} already holds a checkpoint; resume it (--resume) or choose another output folder")
        if init_from is not None:
            record["init_from"] = str(resolve_checkpoint(init_from))
            shift = scaler_shift(init_from, stored_scalers)
            if shift is not None and shift > 0.1:
                log.warning("warm start from %s: the DOS scaler of this data differs from the checkpoint's by up to "
                            "%.2f standard deviations; fine-tuning adapts to it", init_from, shift)
            record["init_scaler_shift"] = shift
    task = DenoiserTask(
        config, train_dataset, val_dataset, hooks=hooks,
        model_factory=lambda: build_model(config, init_from=None if resume else init_from),
        scalers=stored_scalers, num_atoms_counts=None, training_record=record,
    )
    result = run_training(task, EngineSettings.from_train_config(tc, total_epochs, progress=progress), out, hooks=hooks,
                          state=state, state_path=out / TRAIN_STATE)
    return TrainResult(out, result.epochs_completed, result.global_step, result.best_val, result.last_metrics)


def read_metrics(out_dir: str | Path) -> Sequence[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` in ``out_dir``."""
    path = Path(out_dir) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
