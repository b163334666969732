"""The training loop: Adam + ReduceLROnPlateau, gradient clipping, optional EMA, validation, last/best
checkpoints, exact resume, a tqdm progress bar and a JSONL metrics log. Runs on CPU or CUDA.

Randomness (exact resume): the model is initialised from ``seed``; each epoch's data order comes from a
generator seeded with (seed, epoch); t, noise and condition dropout come from one training generator whose
state is saved with every checkpoint; validation uses its own fixed seed. Resuming from the checkpoint of
epoch k therefore reproduces an uninterrupted run bit for bit on the same device.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.errors import CheckpointError
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint, scalers_to_tensors
from dosmatgen.training.config import RunConfig
from dosmatgen.training.keyed_randomness import keyed_step_draws
from dosmatgen.training.step import evaluate_loss, train_step
from dosmatgen.training.warm_start import scaler_shift, warm_start_weights

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
METRICS_LOG = "metrics.jsonl"


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


def num_atoms_counts(dataset: Dataset) -> list[int]:
    """counts[n] = number of training crystals with n atoms (index 0 unused)."""
    sizes = [int(dataset[i].num_atoms.reshape(-1)[0]) for i in range(len(dataset))]
    counts = [0] * (max(sizes, default=0) + 1)
    for n in sizes:
        counts[n] += 1
    return counts


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
    """Train a denoiser, writing ``last.pt``, ``best.pt`` and ``metrics.jsonl`` into ``out_dir``.

    Args:
        config: model, diffusion, conditioning and training settings.
        train_dataset, val_dataset: datasets of torch_geometric ``Data`` (see ``CrystalDOSDataset``).
        resume: continue from ``out_dir/last.pt`` (its model and diffusion configs must equal ``config``'s).
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
    device = torch.device(device)
    last_path = out / LAST_CHECKPOINT
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty")

    if resume and init_from is not None:
        raise ValueError("init_from starts a new run; it cannot be combined with resume")
    model = build_model(config, init_from=None if resume else init_from).to(device)
    diffusion = JointDiffusion(config.diffusion, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=tc.lr_factor, patience=tc.lr_patience, min_lr=tc.min_lr
    )
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True) if tc.ema_decay > 0 else None
    generator = torch.Generator(device=device).manual_seed(tc.seed + 1)

    start_epoch, global_step, best_val = 1, 0, None
    counts: list[int]
    stored_scalers = scalers_to_tensors(scalers)
    if resume:
        ckpt = load_checkpoint(last_path, config.model, config.diffusion, map_location=device)
        model.load_state_dict(ckpt.model_state)
        if ckpt.optimizer_state is None or ckpt.scheduler_state is None or ckpt.rng_state is None:
            raise CheckpointError(f"{last_path}: checkpoint lacks optimizer/scheduler/RNG state needed to resume")
        optimizer.load_state_dict(ckpt.optimizer_state)
        scheduler.load_state_dict(ckpt.scheduler_state)
        if ema is not None:
            if ckpt.ema_state is None:
                raise CheckpointError(f"{last_path}: config asks for EMA but the checkpoint has no EMA state")
            ema.load_state_dict(ckpt.ema_state)
        generator.set_state(ckpt.rng_state["generator"].cpu())
        start_epoch, global_step, best_val = ckpt.epoch + 1, ckpt.global_step, ckpt.best_val
        counts = ckpt.num_atoms_counts
        stored_scalers = stored_scalers or ckpt.scalers
        warm = {"init_from": ckpt.training["init_from"]} if "init_from" in ckpt.training else {}
        log.info("resuming from %s at epoch %d", last_path, start_epoch)
    else:
        if last_path.exists():
            raise CheckpointError(f"{out} already holds a checkpoint; resume it (--resume) or choose another output folder")
        counts = num_atoms_counts(train_dataset)
        warm = {"init_from": str(resolve_checkpoint(init_from))} if init_from is not None else {}
        if init_from is not None:
            shift = scaler_shift(init_from, stored_scalers)
            if shift is not None and shift > 0.1:
                log.warning("warm start from %s: the DOS scaler of this data differs from the checkpoint's by up to "
                            "%.2f standard deviations; fine-tuning adapts to it", init_from, shift)
            warm["init_scaler_shift"] = shift

    val_loader = DataLoader(val_dataset, batch_size=tc.batch_size, shuffle=False) if val_dataset is not None and len(val_dataset) else None
    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, total_epochs + 1):
        t0 = time.perf_counter()
        # the order torch's DistributedSampler(shuffle=True, seed=seed) gives for this epoch, so that a Ray Train run
        # (cluster/ray_train.py) sees the same global batches as this single process
        order = torch.randperm(len(train_dataset), generator=torch.Generator().manual_seed(tc.seed + epoch))
        loader = DataLoader(train_dataset, batch_size=tc.batch_size, sampler=order.tolist())
        sums: dict[str, float] = {}
        seen = 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{total_epochs}", disable=not progress, leave=False)
        for i, batch in enumerate(bar):
            if tc.max_batches_per_epoch and i >= tc.max_batches_per_epoch:
                break
            batch = batch.to(device)
            draws = keyed_step_draws(diffusion, batch, tc.seed, epoch) if tc.per_structure_noise else None
            terms = train_step(
                model, diffusion, batch, optimizer,
                dropout=config.conditioning, grad_clip=tc.grad_clip, grad_clip_mode=tc.grad_clip_mode,
                ema=ema, generator=generator, draws=draws,
            )
            b = int(batch.num_atoms.numel())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * b
            seen += b
            global_step += 1
            bar.set_postfix(loss=f"{terms['loss']:.4f}")
        bar.close()
        train_time = time.perf_counter() - t0
        metrics = {"epoch": epoch, "step": global_step, "lr": optimizer.param_groups[0]["lr"]}
        metrics.update({f"train_{k}": v / max(seen, 1) for k, v in sums.items()})
        metrics["train_structures_per_s"] = seen / train_time if train_time > 0 else None
        monitor = metrics["train_loss"]
        improved = False
        if val_loader is not None:
            eval_model = ema if ema is not None else model
            val = evaluate_loss(eval_model, diffusion, val_loader, device=device, seed=tc.val_seed)
            metrics.update({f"val_{k}": v for k, v in val.items()})
            monitor = val["loss"]
        if best_val is None or monitor < best_val:
            best_val, improved = monitor, True
        scheduler.step(monitor)
        metrics["best_val"] = best_val
        metrics["time_s"] = time.perf_counter() - t0

        ckpt = DenoiserCheckpoint(
            model_config=config.model,
            diffusion_config=config.diffusion,
            model_state=model.state_dict(),
            conditioning=config.conditioning.to_dict(),
            training={**config.training.to_dict(), "data": asdict(config.data), **warm},  # the splits travel with the weights
            ema_state=ema.state_dict() if ema is not None else None,
            optimizer_state=optimizer.state_dict(),
            scheduler_state=scheduler.state_dict(),
            rng_state={"generator": generator.get_state()},
            epoch=epoch,
            global_step=global_step,
            best_val=best_val,
            scalers=stored_scalers,
            num_atoms_counts=counts,
        )
        save_checkpoint(last_path, ckpt)
        if improved:
            save_checkpoint(out / BEST_CHECKPOINT, ckpt)
        with open(out / METRICS_LOG, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        if progress:
            tqdm.write(_summary(metrics))
    return TrainResult(out, max(start_epoch - 1, total_epochs), global_step, best_val, metrics)


def _summary(m: Mapping[str, Any]) -> str:
    parts = [f"epoch {m['epoch']}", f"loss {m['train_loss']:.4f}"]
    if "val_loss" in m:
        parts.append(f"val {m['val_loss']:.4f}")
    parts.append(f"lr {m['lr']:.2e}")
    return " | ".join(parts)


def read_metrics(out_dir: str | Path) -> Sequence[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` in ``out_dir``."""
    path = Path(out_dir) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
