"""Training of the time-dependent DOS regressor g(y | S_t, t) on noisy crystals (classifier guidance).

Each step draws t uniform in 1..T per crystal, noises the clean crystal with the SAME forward process as the
denoiser (``JointDiffusion.q_sample``), and fits the scaled site DOS of every atom (L1 or MSE). The YAML config has
sections ``regressor`` (:class:`RegressorConfig`), ``diffusion`` (must equal the denoiser's), ``training``
(:class:`~dosmatgen.training.config.TrainConfig`) and ``data`` (:class:`~dosmatgen.training.config.DataConfig`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.diffusion.state import StateNoise
from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.regressor.checkpoint import RegressorCheckpoint, load_regressor, save_regressor
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.regressor.model import NoisyDOSRegressor
from dosmatgen.training.checkpoint import config_differences, scalers_to_tensors
from dosmatgen.training.metrics_log import keep_epochs_before
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state, save_train_state
from dosmatgen.training.config import DataConfig, TrainConfig

LAST = "last.pt"
BEST = "best.pt"
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


def regressor_loss(
    model: NoisyDOSRegressor, diffusion: JointDiffusion, batch, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mean L1 (or MSE) between g(S_t, t) and the batch's scaled ``site_dos`` over all atoms and bins."""
    if getattr(batch, "site_dos", None) is None:
        raise ValueError("regressor training needs batches with site_dos")
    clean = diffusion.clean_state(batch)
    t = diffusion.sample_timesteps(clean.num_crystals, generator)
    noisy = diffusion.q_sample(clean, t, StateNoise.randn_like(clean, generator))
    pred = model(noisy.atom_types, noisy.frac_coords, noisy.lattice, t, noisy.batch, noisy.num_atoms)
    target = batch.site_dos.float()
    if model.config.loss == "mse":
        return torch.nn.functional.mse_loss(pred, target)
    return torch.nn.functional.l1_loss(pred, target)


@dataclass(frozen=True)
class RegressorTrainResult:
    out_dir: Path
    epochs: int
    best_val: float | None
    last_metrics: dict[str, Any]

    @property
    def best_checkpoint(self) -> Path:
        return self.out_dir / BEST


@torch.no_grad()
def _val_loss(model, diffusion, loader, device, seed) -> float:
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        n = int(batch.num_atoms.numel())
        total += float(regressor_loss(model, diffusion, batch, gen)) * n
        count += n
    return total / max(count, 1)


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
    if len(train_dataset) == 0:
        raise ValueError("the training set is empty")
    out = Path(out_dir)
    recorded = {k: (None if v is None else str(v)) for k, v in {**asdict(config.data), **dict(data or {})}.items()}
    state = _load_train_state(out, config, recorded, torch.device(device)) if resume else None
    if state is not None and init_from is not None:
        raise CheckpointError(f"{out / TRAIN_STATE}: --init-from starts a new run; it cannot be combined with --resume")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc.seed)
        model = NoisyDOSRegressor(config.regressor)
    warm: dict[str, str] = {}
    if state is not None:
        model.load_state_dict(state["model"])
        warm = dict(state["warm"])
    elif init_from is not None:
        start = load_regressor(init_from)
        for name, have, want in (("regressor", start.config, config.regressor), ("diffusion", start.diffusion_config, config.diffusion)):
            if have != want:
                diff = config_differences(have.to_dict(), want.to_dict())
                raise CheckpointError(f"{resolve_checkpoint(init_from)}: {name} config does not match ({'; '.join(diff)})")
        model.load_state_dict(start.state)
        warm = {"init_from": str(resolve_checkpoint(init_from))}
    model = model.to(device)
    diffusion = JointDiffusion(config.diffusion, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=tc.lr_factor, patience=tc.lr_patience, min_lr=tc.min_lr)
    gen = torch.Generator(device=device).manual_seed(tc.seed + 1)
    stored_scalers = scalers_to_tensors(scalers)
    val_loader = DataLoader(val_dataset, batch_size=tc.batch_size) if val_dataset is not None and len(val_dataset) else None
    best, metrics, first_epoch = None, {}, 1
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        best, metrics, first_epoch = state["best"], state["metrics"], state["epoch"] + 1
    log_path = out / METRICS
    if state is None:
        log_path.write_text("")
        (out / TRAIN_STATE).unlink(missing_ok=True)
    else:  # keep the log lines of the epochs the saved state covers
        keep_epochs_before(log_path, first_epoch)
    total_epochs = int(epochs or tc.epochs)
    for epoch in range(first_epoch, total_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_dataset), generator=torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch))
        loader = DataLoader(train_dataset, batch_size=tc.batch_size, sampler=order.tolist())
        total, seen = 0.0, 0
        for i, batch in enumerate(tqdm(loader, desc=f"epoch {epoch}/{total_epochs}", disable=not progress, leave=False)):
            if tc.max_batches_per_epoch and i >= tc.max_batches_per_epoch:
                break
            batch = batch.to(device)
            opt.zero_grad(set_to_none=True)
            loss = regressor_loss(model, diffusion, batch, gen)
            loss.backward()
            if tc.grad_clip:
                if tc.grad_clip_mode == "value":
                    torch.nn.utils.clip_grad_value_(model.parameters(), tc.grad_clip)
                else:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            n = int(batch.num_atoms.numel())
            total, seen = total + float(loss.detach()) * n, seen + n
        metrics = {"epoch": epoch, "train_loss": total / max(seen, 1), "lr": opt.param_groups[0]["lr"]}
        monitor = metrics["train_loss"]
        if val_loader is not None:
            metrics["val_loss"] = monitor = _val_loss(model, diffusion, val_loader, device, tc.val_seed)
        sched.step(monitor)
        metrics["time_s"] = time.perf_counter() - t0
        ckpt = RegressorCheckpoint(config.regressor, config.diffusion, model.state_dict(), stored_scalers, {**metrics, **warm},
                                   data=recorded)
        save_regressor(out / LAST, ckpt)
        if best is None or monitor < best:
            best = monitor
            save_regressor(out / BEST, ckpt)
        with open(log_path, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        save_train_state(out, {"config": config.to_dict(), "data": recorded, "device_type": device.type, "epoch": epoch,
                                "best": best, "metrics": metrics, "warm": warm, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "generator": gen.get_state()})
        if progress:
            tqdm.write(f"epoch {epoch} | loss {metrics['train_loss']:.4f}" + (f" | val {metrics['val_loss']:.4f}" if "val_loss" in metrics else ""))
    return RegressorTrainResult(out, total_epochs, best, metrics)


def _load_train_state(out: Path, config: RegressorRunConfig, recorded: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The saved state of the run in ``out``; CheckpointError when there is none or it belongs to another run."""
    path = out / TRAIN_STATE
    state = read_train_state(out, "regressor")

    def comparable(d: Mapping[str, Any]) -> dict[str, Any]:
        d = json.loads(json.dumps(d))
        d["training"].pop("epochs", None)
        return d

    if comparable(state["config"]) != comparable(config.to_dict()):
        diff = [f"{section}.{line}" for section in ("regressor", "diffusion", "training", "data")
                for line in config_differences(comparable(state["config"])[section], comparable(config.to_dict())[section])]
        raise CheckpointError(f"{path}: the config differs from the interrupted run's ({'; '.join(diff)})")
    if state.get("device_type") != device.type:  # the noise generator lives on the device; its state does not move
        raise CheckpointError(f"{path}: the interrupted run trained on {state.get('device_type')}, not {device.type}; "
                              f"resume it on the same kind of device")
    if dict(state["data"]) != dict(recorded):
        raise CheckpointError(f"{path}: the interrupted run trained on {state['data']}, not {dict(recorded)}")
    return state
