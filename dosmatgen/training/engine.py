"""One training engine for every model: the epoch loop, EMA, validation and best-checkpoint selection, the metrics
log, exact resume from one state format, checkpoints and time/epoch budgets.

A model plugs in through a :class:`TrainingTask` (its model, data order, loss, validation, checkpoint files and
what must stay the same on resume). A data-parallel launcher plugs in through
:class:`~dosmatgen.training.distributed.DistributedHooks` (rank, device, collectives); the default is one process.

Per epoch: the task's batches (at most ``max_batches_per_epoch``), each a zero-grad, the task's loss, backward,
clipping, Adam step and EMA update; the loss terms weighted by the task's weights, summed over ranks; validation on
the EMA weights when there are any; the plateau schedule steps on the validation loss (the training loss without
validation); then, on rank 0, the task's checkpoints, a row of ``metrics.jsonl`` and ``train_state.pt``.

Exact resume: every random generator of the task (per rank) is saved with the state, and the data order of an epoch
is a function of the epoch or of a saved generator, so a run resumed from epoch k equals an uninterrupted run bit
for bit on the same device and number of threads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch
from torch import nn
from tqdm import tqdm  # not tqdm.auto: its asyncio variant opens an extra iterator, which draws from a loader's generator

from dosmatgen.errors import CheckpointError
from dosmatgen.training.checkpoint import config_differences
from dosmatgen.training.distributed import DistributedHooks, SingleProcess
from dosmatgen.training.ema import make_ema
from dosmatgen.training.metrics_log import keep_epochs_before
from dosmatgen.training.optimisation import apply_update, build_optimiser
from dosmatgen.training.train_state import TRAIN_STATE, TrainState, save_train_state

log = logging.getLogger(__name__)

METRICS_LOG = "metrics.jsonl"


@dataclass(frozen=True)
class EngineSettings:
    """Optimiser and loop settings of one run."""

    epochs: int
    lr: float
    lr_factor: float
    lr_patience: int
    min_lr: float
    grad_clip: float | None
    grad_clip_mode: str = "value"
    weight_decay: float = 0.0
    ema_decay: float = 0.0
    max_batches_per_epoch: int = 0
    #: stop after the first epoch that ends past this many seconds (counting the time of earlier sessions)
    max_seconds: float | None = None
    progress: bool = False

    @classmethod
    def from_train_config(cls, tc, epochs: int, **overrides: Any) -> "EngineSettings":
        """From a :class:`~dosmatgen.training.config.TrainConfig` (denoiser and regressor runs)."""
        values = dict(epochs=int(epochs), lr=tc.lr, lr_factor=tc.lr_factor, lr_patience=tc.lr_patience,
                      min_lr=tc.min_lr, grad_clip=tc.grad_clip, grad_clip_mode=tc.grad_clip_mode, ema_decay=tc.ema_decay,
                      max_batches_per_epoch=tc.max_batches_per_epoch)
        return cls(**{**values, **overrides})


@dataclass
class StepLoss:
    """The loss of one batch: the tensor to minimise, its terms as floats (with "loss") and the weight of the batch
    in the epoch means (crystals, or target rows)."""

    loss: torch.Tensor
    terms: dict[str, float]
    weight: float


@dataclass
class EpochRecord:
    """What an epoch leaves behind, for the task's checkpoints and the launcher's ``on_epoch_end``."""

    epoch: int
    global_step: int
    metrics: dict[str, Any]
    improved: bool
    best_val: float
    best_epoch: int
    model: nn.Module  # the bare model (no DDP wrapper)
    ema: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    local_structures: int
    structures: int  # over all ranks
    state_path: Path | None  # train_state.pt on rank 0, None elsewhere


class TrainingTask(Protocol):
    """What one model contributes to the engine."""

    #: the model's name in messages and in the state ("denoiser", "regressor", "surrogate")
    kind: str

    def build_model(self) -> nn.Module:
        """The initialised model (on CPU)."""

    def generators(self) -> dict[str, torch.Generator]:
        """Every random generator the training consumes, by name (saved and restored with the state)."""

    def resume_identity(self) -> dict[str, Any]:
        """{section: value} that must equal the interrupted run's for a resume (configs, data)."""

    def batches(self, epoch: int) -> Iterable:
        """The training batches of ``epoch`` (1-based) for this rank."""

    def loss(self, model: nn.Module, batch, epoch: int) -> StepLoss:
        """The loss of one batch (already on the device)."""

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        """Validation terms ("loss" is monitored) of ``model`` (the EMA when there is one); None: no validation."""

    def save_checkpoints(self, record: EpochRecord, out: Path) -> None:
        """Write the model's checkpoint files for this epoch (rank 0 only)."""

    def extra_state(self) -> dict[str, Any]:
        """The task's own part of the state (primitives and tensors)."""

    def load_extra_state(self, extra: Mapping[str, Any]) -> None:
        """Restore :meth:`extra_state` from a resumed state."""


@dataclass(frozen=True)
class EngineResult:
    epochs_completed: int
    global_step: int
    best_val: float | None
    best_epoch: int
    last_metrics: dict[str, Any]
    seconds: float
    stopped_early: bool


def check_resumable(task: TrainingTask, state: TrainState, state_path: Path, generators: Mapping[str, torch.Generator]) -> None:
    """CheckpointError naming ``state_path`` when the interrupted run differs from ``task`` in its identity, or when a
    random generator's state belongs to another kind of device."""
    now = task.resume_identity()
    for section in sorted(set(state.identity) | set(now)):
        saved, want = state.identity.get(section), now.get(section)
        if _canonical(saved) != _canonical(want):
            if isinstance(saved, Mapping) and isinstance(want, Mapping):
                diff = config_differences(_canonical(saved), _canonical(want))
            else:
                diff = [f"interrupted run {saved!r} vs requested {want!r}"]
            raise CheckpointError(f"{state_path}: the {section} differs from the interrupted run's ({'; '.join(diff)})")
    for name, gen in generators.items():
        saved_type = state.devices.get(name)
        if saved_type != gen.device.type:
            raise CheckpointError(f"{state_path}: the interrupted run trained on {saved_type}, not {gen.device.type}; "
                                  "resume it on the same kind of device (the state of its random generator "
                                  f"{name!r} belongs to that device)")


def _canonical(value: Any) -> Any:
    """Tuples as lists and keys as strings, as the value reads back from a saved state."""
    return json.loads(json.dumps(value, default=str))


def run_training(
    task: TrainingTask,
    settings: EngineSettings,
    out: Path,
    *,
    hooks: DistributedHooks | None = None,
    state: TrainState | None = None,
    state_path: Path | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    started: float | None = None,
) -> EngineResult:
    """Train ``task`` to ``settings.epochs`` (or the time budget), writing into ``out`` on rank 0.

    ``state`` (read by :func:`~dosmatgen.training.train_state.read_train_state` from ``state_path``) resumes an
    interrupted run; without it the run starts fresh and empties ``out``'s metrics log. ``started``: the
    ``time.perf_counter()`` at which the caller began (the budget counts the caller's set-up too).
    """
    t_start = time.perf_counter() if started is None else started
    hooks = hooks if hooks is not None else SingleProcess()
    device = torch.device(hooks.device)
    out = Path(out)
    rank = hooks.rank
    model = task.build_model()
    generators = task.generators()
    if state is not None:
        check_resumable(task, state, Path(state_path or out / TRAIN_STATE), generators)
        model.load_state_dict(state.model)
    model = model.to(device)
    ema = make_ema(model, settings.ema_decay)
    optimizer, scheduler = build_optimiser(model, lr=settings.lr, weight_decay=settings.weight_decay,
                                           lr_factor=settings.lr_factor, lr_patience=settings.lr_patience,
                                           min_lr=settings.min_lr)
    first_epoch, global_step, best, best_epoch, spent = 1, 0, None, 0, 0.0
    metrics: dict[str, Any] = {}
    if state is not None:
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if ema is not None:
            if state.ema is None:
                raise CheckpointError(f"{state_path}: the config asks for EMA but the interrupted run kept none")
            ema.load_state_dict(state.ema)
        _restore_generators(generators, state, rank, state_path)
        task.load_extra_state(state.task)
        first_epoch, global_step, best, best_epoch = state.epoch + 1, state.global_step, state.best_val, state.best_epoch
        spent, metrics = state.seconds, dict(state.metrics)
        log.info("resuming %s after epoch %d (%.1f min spent)", state_path, state.epoch, spent / 60)
    train_model = hooks.prepare_model(model)
    identity = task.resume_identity()
    log_path = out / METRICS_LOG
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if state is None:
            log_path.write_text("")
            (out / TRAIN_STATE).unlink(missing_ok=True)
        else:  # keep the log rows of the epochs the state covers (a kill can fall between the log and the state)
            keep_epochs_before(log_path, first_epoch)

    last_epoch, stopped_early = settings.epochs, False
    if settings.max_seconds is not None and spent > settings.max_seconds:
        log.info("%s: the %.1f min budget was already spent; nothing left to train", out, settings.max_seconds / 60)
        last_epoch, stopped_early = first_epoch - 1, first_epoch - 1 < settings.epochs
    epoch = first_epoch - 1
    for epoch in range(first_epoch, last_epoch + 1):
        t0 = time.perf_counter()
        train_model.train()
        sums, weight, structures, steps = _train_epoch(task, train_model, optimizer, ema, settings, epoch, device)
        global_step += steps
        train_time = time.perf_counter() - t0
        local_structures = structures
        if hooks.world_size > 1:
            sums, weight, structures = _sum_over_ranks(hooks, sums, weight, structures)
        metrics = {"epoch": epoch, "step": global_step, "lr": optimizer.param_groups[0]["lr"]}
        metrics.update({f"train_{k}": v / max(weight, 1) for k, v in sums.items()})
        metrics["train_structures_per_s"] = structures / train_time if train_time > 0 else None
        monitor = metrics["train_loss"]
        val = task.validate(ema if ema is not None else model)
        if val is not None:
            metrics.update({f"val_{k}": v for k, v in val.items()})
            monitor = val["loss"]
        improved = best is None or monitor < best
        if improved:
            best, best_epoch = monitor, epoch
        scheduler.step(monitor)
        metrics["best_val"] = best
        metrics["time_s"] = time.perf_counter() - t0
        rng = hooks.all_gather_object({name: g.get_state() for name, g in generators.items()})
        elapsed = spent + time.perf_counter() - t_start
        record = EpochRecord(epoch, global_step, metrics, improved, best, best_epoch, model, ema, optimizer, scheduler,
                             local_structures, structures, out / TRAIN_STATE if rank == 0 else None)
        if rank == 0:
            task.save_checkpoints(record, out)
            with open(log_path, "a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            save_train_state(out, TrainState(
                kind=task.kind, epoch=epoch, global_step=global_step, best_val=best, best_epoch=best_epoch,
                seconds=elapsed, model=model.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), ema=ema.state_dict() if ema is not None else None, rng=rng,
                devices={name: g.device.type for name, g in generators.items()}, identity=_canonical(identity),
                task=task.extra_state(), metrics=metrics,
            ))
        if on_epoch_end is not None:
            on_epoch_end(record)
        summary = epoch_summary(metrics)
        if settings.progress and rank == 0:
            tqdm.write(summary)
        else:
            log.info("%s", summary)
        if settings.max_seconds is not None and elapsed > settings.max_seconds:
            stopped_early = epoch < settings.epochs
            break
    return EngineResult(max(first_epoch - 1, epoch), global_step, best, best_epoch, metrics,
                        spent + time.perf_counter() - t_start, stopped_early)


def _train_epoch(task, model, optimizer, ema, settings: EngineSettings, epoch: int, device: torch.device):
    """Sums of the weighted loss terms, the summed weight, the crystals seen and the steps taken, on this rank."""
    sums: dict[str, float] = {}
    weight, structures, steps = 0.0, 0, 0
    batches = task.batches(epoch)
    bar = tqdm(batches, desc=f"epoch {epoch}/{settings.epochs}", leave=False) if settings.progress else None
    for i, batch in enumerate(bar if bar is not None else batches):
        if settings.max_batches_per_epoch and i >= settings.max_batches_per_epoch:
            break
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        step = task.loss(model, batch, epoch)
        apply_update(model, step.loss, optimizer, grad_clip=settings.grad_clip, grad_clip_mode=settings.grad_clip_mode,
                     ema=ema)
        for k, v in step.terms.items():
            sums[k] = sums.get(k, 0.0) + v * step.weight
        weight += step.weight
        structures += int(batch.num_atoms.numel())
        steps += 1
        if bar is not None:
            bar.set_postfix(loss=f"{step.terms['loss']:.4f}")
    if bar is not None:
        bar.close()
    return sums, weight, structures, steps


def _sum_over_ranks(hooks: DistributedHooks, sums: dict[str, float], weight: float, structures: int):
    """The epoch sums of every rank added up (float64)."""
    keys = sorted(sums)
    local = torch.tensor([weight, float(structures)] + [sums[k] for k in keys], dtype=torch.float64)
    total = hooks.all_reduce(local).to("cpu", torch.float64)
    return {k: float(total[2 + i]) for i, k in enumerate(keys)}, float(total[0]), int(total[1])


def _restore_generators(generators: Mapping[str, torch.Generator], state: TrainState, rank: int, state_path) -> None:
    if rank >= len(state.rng):
        log.warning("%s holds the generators of %d rank(s); rank %d starts with fresh ones", state_path,
                    len(state.rng), rank)
        return
    saved = state.rng[rank]
    for name, gen in generators.items():
        if name not in saved:
            raise CheckpointError(f"{state_path}: no state of the random generator {name!r}")
        gen.set_state(saved[name].cpu())


def epoch_summary(m: Mapping[str, Any]) -> str:
    """One line per epoch: loss, validation loss, learning rate."""
    parts = [f"epoch {m['epoch']}", f"loss {m['train_loss']:.4f}"]
    if "val_loss" in m:
        parts.append(f"val {m['val_loss']:.4f}")
    parts.append(f"lr {m['lr']:.2e}")
    return " | ".join(parts)
