"""Train the forward DOS surrogate on a dataset store: L1 loss on the scaled DOS, best checkpoint on validation.

Outputs in ``out_dir``: ``surrogate.pt`` (best validation MAE; see :mod:`~dosmatgen.surrogate.checkpoint`),
``metrics.jsonl`` (one JSON line per epoch: ``epoch``, ``step``, ``lr`` (the rate the epoch trained with),
``train_loss``, ``val_loss`` = validation MAE on scaled features (absent without a validation split), ``best_val``,
``time_s``), ``train_config.json`` and ``train_state.pt`` (the state after the last finished epoch: weights,
optimizer, scheduler and random generators, so that ``resume=True`` continues an interrupted run exactly; the
``max_minutes`` budget counts the time already spent). The loop is the training engine's
(:mod:`dosmatgen.training.engine`) with :class:`~dosmatgen.surrogate.task.SurrogateTask`. The test split is never
read here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.data.store import DatasetStore
from dosmatgen.data.torch_dataset import CrystalDOSDataset
from dosmatgen.errors import CheckpointError, StoreError
from dosmatgen.surrogate.checkpoint import load_checkpoint
from dosmatgen.surrogate.config import SurrogateTrainConfig
from dosmatgen.surrogate.model import DOSSurrogate
from dosmatgen.surrogate.task import CHECKPOINT_NAME, SurrogateTask, mean_abs_error, target_of
from dosmatgen.training.checkpoint import config_differences
from dosmatgen.training.distributed import SingleProcess
from dosmatgen.training.engine import METRICS_LOG, EngineSettings, run_training
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state

__all__ = ["CHECKPOINT_NAME", "METRICS_LOG", "RESUMABLE_CHANGES", "SurrogateTrainResult", "mean_abs_error", "target_of",
           "train_surrogate"]

log = logging.getLogger(__name__)

#: Config fields that may change between an interrupted run and its resumption (how long it runs, where).
RESUMABLE_CHANGES = ("epochs", "max_minutes", "device", "num_threads")


@dataclass(frozen=True)
class SurrogateTrainResult:
    checkpoint: Path
    epochs_run: int
    best_epoch: int
    best_val_mae: float
    seconds: float
    stopped_early: bool


def train_surrogate(
    store: str | Path | DatasetStore,
    out_dir: str | Path,
    config: SurrogateTrainConfig = SurrogateTrainConfig(),
    *,
    train_split: str = "train",
    val_split: str = "val",
    init_from: str | Path | None = None,
    resume: bool = False,
    repeat: Mapping[str, int] | None = None,
) -> SurrogateTrainResult:
    """Train a surrogate on ``train_split`` of ``store``, selecting the checkpoint on ``val_split``.

    Falls back to the training MAE for selection (with a warning) when the validation split is empty.
    ``init_from`` (a surrogate checkpoint or ``bundled:NAME``) starts from its weights (fine-tuning); its model
    config must equal this run's, and it is recorded as ``info["init_from"]`` in the checkpoint.
    ``resume`` continues the run in ``out_dir`` from its ``train_state.pt`` (same store, splits and config, except
    :data:`RESUMABLE_CHANGES`); on CPU with the same number of threads the result equals an uninterrupted run's
    (CUDA kernels are not bitwise deterministic). ``repeat`` (id -> times) weights structures of the training set.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    state = read_train_state(out, "surrogate") if resume else None
    if state is not None and init_from is not None:
        raise CheckpointError(f"{out / TRAIN_STATE}: --init-from starts a new run; it cannot be combined with --resume")
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    torch.manual_seed(config.seed)
    ds = store if isinstance(store, DatasetStore) else DatasetStore.open(store)
    if not ds.has_dos:
        raise StoreError(f"{ds.path} holds structures only; the surrogate needs a DOS store")
    model_cfg = config.model_config()
    train_set = CrystalDOSDataset(ds, train_split, scaled=True, repeat=repeat)
    val_set = CrystalDOSDataset(ds, val_split, scaled=True)
    if len(train_set) == 0:
        raise StoreError(f"{ds.path}: split {train_split!r} is empty")
    if len(val_set) == 0:
        log.warning("validation split %r is empty: selecting the checkpoint on the training MAE", val_split)
    scaler = train_set.site_scaler if model_cfg.target == "site" else train_set.total_scaler
    grid = ds.site_grid if model_cfg.target == "site" else ds.total_grid
    if grid.n != model_cfg.out_dim:
        raise StoreError(f"{ds.path}: {model_cfg.target} features have {grid.n} bins, the model outputs {model_cfg.out_dim}")

    device = torch.device(config.device)
    model = DOSSurrogate(model_cfg)
    if init_from is not None:
        init_from = resolve_checkpoint(init_from)
        start, start_scaler, start_grid, _ = load_checkpoint(init_from)
        if start_grid != grid:
            raise CheckpointError(f"{init_from}: surrogate energy grid {start_grid} differs from the data's {grid}")
        shift = float(np.max(np.abs(scaler.mean - start_scaler.mean) / np.maximum(start_scaler.std, 1e-12)))
        if shift > 0.1:
            log.warning("warm start from %s: the DOS scaler of this data differs from the checkpoint's by up to %.2f "
                        "standard deviations; fine-tuning adapts to it", init_from, shift)
        if start.config != model_cfg:
            diff = config_differences(start.config.to_dict(), model_cfg.to_dict())
            raise CheckpointError(f"{init_from}: surrogate model config does not match ({'; '.join(diff)})")
        model.load_state_dict(start.state_dict())
    info: dict[str, Any] = {
        "store": str(ds.path),
        "train_split": train_split,
        "val_split": val_split,
        "split_sizes": ds.split_sizes(),
        "train_config": config.to_dict(),
        **({"init_from": str(init_from)} if init_from is not None else {}),
    }
    identity = {
        "training config": {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES},
        "splits": {"train_split": train_split, "val_split": val_split},
        "store": _store_fingerprint(ds),
    }
    task = SurrogateTask(model, train_set, val_set, batch_size=config.batch_size, seed=config.seed, device=device,
                         scaler=scaler, grid=grid, info=info, identity=identity)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    settings = EngineSettings(
        epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay, lr_factor=config.lr_factor,
        lr_patience=config.lr_patience, min_lr=config.min_lr, grad_clip=config.grad_clip, grad_clip_mode="norm",
        max_seconds=None if config.max_minutes is None else 60.0 * config.max_minutes,
    )
    result = run_training(task, settings, out, state=state, state_path=out / TRAIN_STATE,
                          hooks=SingleProcess(device), started=t_start)
    ckpt_path = out / CHECKPOINT_NAME
    if not ckpt_path.is_file():
        raise CheckpointError(f"{out}: no epoch finished, so no {CHECKPOINT_NAME} was written")
    return SurrogateTrainResult(ckpt_path, result.epochs_completed, result.best_epoch, result.best_val, result.seconds,
                                result.stopped_early)


def _store_fingerprint(ds: DatasetStore) -> dict[str, Any]:
    """Enough of a store to tell another dataset apart: its path, size and split sizes."""
    return {"path": str(Path(ds.path).resolve()), "n_structures": len(ds), "split_sizes": ds.split_sizes()}
