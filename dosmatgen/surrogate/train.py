"""Train the forward DOS surrogate on a dataset store: L1 loss on the scaled DOS, best checkpoint on validation.

Outputs in ``out_dir``: ``surrogate.pt`` (best validation MAE; see :mod:`~dosmatgen.surrogate.checkpoint`),
``metrics.jsonl`` (one JSON line per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``, ``val_loss`` = validation
MAE on scaled features, ``best_val``, ``time_s``), ``train_config.json`` and ``train_state.pt`` (the state after the
last finished epoch: weights, optimizer, scheduler and random generators, so that ``resume=True`` continues an
interrupted run exactly; the ``max_minutes`` budget counts the time already spent). The test split is never read here.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.data.store import DatasetStore
from dosmatgen.data.torch_dataset import CrystalDOSDataset
from dosmatgen.errors import CheckpointError, StoreError
from dosmatgen.surrogate.checkpoint import load_checkpoint, save_checkpoint
from dosmatgen.surrogate.config import SurrogateTrainConfig
from dosmatgen.surrogate.model import DOSSurrogate
from dosmatgen.training.checkpoint import config_differences
from dosmatgen.training.metrics_log import keep_epochs_before
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state, save_train_state

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "surrogate.pt"
METRICS_LOG = "metrics.jsonl"
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


def target_of(batch, target: str) -> torch.Tensor:
    """The scaled training target of a batch: ``site_dos`` (N, 400) or ``total_dos`` (B, 256)."""
    key = "site_dos" if target == "site" else "total_dos"
    y = getattr(batch, key, None)
    if y is None:
        raise StoreError(f"the dataset has no {key}: train the surrogate on a DOS store")
    return y.float()


@torch.no_grad()
def mean_abs_error(model: DOSSurrogate, loader: DataLoader, device: torch.device) -> float:
    """MAE over all target rows and bins of ``loader`` (scaled features)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        y = target_of(batch, model.config.target)
        total += float((model.forward_batch(batch) - y).abs().sum())
        count += y.numel()
    return total / max(count, 1)


def train_surrogate(
    store: str | Path | DatasetStore,
    out_dir: str | Path,
    config: SurrogateTrainConfig = SurrogateTrainConfig(),
    *,
    train_split: str = "train",
    val_split: str = "val",
    init_from: str | Path | None = None,
    resume: bool = False,
) -> SurrogateTrainResult:
    """Train a surrogate on ``train_split`` of ``store``, selecting the checkpoint on ``val_split``.

    Falls back to the training MAE for selection (with a warning) when the validation split is empty.
    ``init_from`` (a surrogate checkpoint or ``bundled:NAME``) starts from its weights (fine-tuning); its model
    config must equal this run's, and it is recorded as ``info["init_from"]`` in the checkpoint.
    ``resume`` continues the run in ``out_dir`` from its ``train_state.pt`` (same store, splits and config, except
    :data:`RESUMABLE_CHANGES`); on CPU with the same number of threads the result equals an uninterrupted run's
    (CUDA kernels are not bitwise deterministic).
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    state = _load_train_state(out, config, train_split, val_split) if resume else None
    if state is not None and init_from is not None:
        raise CheckpointError(f"{out / TRAIN_STATE}: --init-from starts a new run; it cannot be combined with --resume")
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    torch.manual_seed(config.seed)
    ds = store if isinstance(store, DatasetStore) else DatasetStore.open(store)
    if not ds.has_dos:
        raise StoreError(f"{ds.path} holds structures only; the surrogate needs a DOS store")
    model_cfg = config.model_config()
    train_set = CrystalDOSDataset(ds, train_split, scaled=True)
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
    best, best_epoch, step, stopped_early = float("inf"), 0, 0, False
    first_epoch, spent = 1, 0.0
    if state is not None:
        if state["store_fingerprint"] != _store_fingerprint(ds):
            raise CheckpointError(f"{out / TRAIN_STATE}: the interrupted run trained on other data "
                                  f"({state['store_fingerprint']}); resume it with the same store")
        model.load_state_dict(state["model"])
        info = state["info"]
        best, best_epoch, step = state["best"], state["best_epoch"], state["step"]
        first_epoch, spent = state["epoch"] + 1, state["seconds"]
        log.info("resuming %s after epoch %d (%.1f min spent)", out, state["epoch"], spent / 60)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )
    generator = torch.Generator().manual_seed(config.seed)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=generator)
    val_loader = DataLoader(val_set, batch_size=max(config.batch_size, 64), shuffle=False) if len(val_set) else None

    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    metrics_path = out / METRICS_LOG
    if state is None:
        metrics_path.write_text("")
        (out / TRAIN_STATE).unlink(missing_ok=True)
    else:  # drop log lines of epochs after the saved state (a run killed between the log and the state write)
        keep_epochs_before(metrics_path, first_epoch)
    ckpt_path = out / CHECKPOINT_NAME

    epoch = first_epoch - 1
    last_epoch = config.epochs
    if state is not None and config.max_minutes is not None and spent > 60.0 * config.max_minutes:
        log.info("%s: the %.1f min budget was already spent; nothing left to train", out, config.max_minutes)
        last_epoch, stopped_early = epoch, epoch < config.epochs
    for epoch in range(first_epoch, last_epoch + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, rows = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            y = target_of(batch, model_cfg.target)
            loss = (model.forward_batch(batch) - y).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            loss_sum += float(loss.detach()) * y.shape[0]
            rows += y.shape[0]
            step += 1
        train_loss = loss_sum / max(rows, 1)
        monitor = mean_abs_error(model, val_loader, device) if val_loader is not None else train_loss
        scheduler.step(monitor)
        if monitor < best:
            best, best_epoch = monitor, epoch
            save_checkpoint(ckpt_path, model, scaler, grid, {**info, "epoch": epoch, "val_mae": monitor})
        row = {
            "epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
            "val_loss": monitor if val_loader is not None else None, "best_val": best, "time_s": time.perf_counter() - t0,
        }
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        elapsed = spent + time.perf_counter() - t_start
        save_train_state(out, {
            "config": config.to_dict(), "train_split": train_split, "val_split": val_split,
            "store_fingerprint": _store_fingerprint(ds), "info": info, "epoch": epoch, "step": step, "best": best,
            "best_epoch": best_epoch, "seconds": elapsed, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        })
        log.info("epoch %d train L1 %.4f val MAE %.4f lr %.2e", epoch, train_loss, monitor, row["lr"])
        if config.max_minutes is not None and elapsed > 60.0 * config.max_minutes:
            stopped_early = epoch < config.epochs
            break
    if not ckpt_path.is_file():
        raise CheckpointError(f"{out}: no epoch finished, so no {CHECKPOINT_NAME} was written")
    return SurrogateTrainResult(ckpt_path, epoch, best_epoch, best, spent + time.perf_counter() - t_start, stopped_early)


def _store_fingerprint(ds: DatasetStore) -> dict[str, Any]:
    """Enough of a store to tell another dataset apart: its path, size and split sizes."""
    return {"path": str(Path(ds.path).resolve()), "n_structures": len(ds), "split_sizes": ds.split_sizes()}


def _load_train_state(out: Path, config: SurrogateTrainConfig, train_split: str, val_split: str) -> dict[str, Any]:
    """The saved state of the run in ``out``; CheckpointError when there is none or it belongs to another run."""
    path = out / TRAIN_STATE
    state = read_train_state(out, "surrogate")
    if (state.get("train_split"), state.get("val_split")) != (train_split, val_split):
        raise CheckpointError(f"{path}: the interrupted run used splits {state.get('train_split')!r}/{state.get('val_split')!r}, "
                              f"not {train_split!r}/{val_split!r}")
    saved = {k: v for k, v in state["config"].items() if k not in RESUMABLE_CHANGES}
    now = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    if saved != now:
        diff = config_differences(saved, now)
        raise CheckpointError(f"{path}: the training config differs from the interrupted run's ({'; '.join(diff)})")
    return state
