"""The forward DOS surrogate as a :class:`~dosmatgen.training.engine.TrainingTask`: L1 loss on the scaled DOS,
the checkpoint ``surrogate.pt`` rewritten on every improvement of the validation MAE.

Randomness: the model is initialised from the global torch generator seeded with ``seed`` (by the caller); the
data order comes from the DataLoader's generator seeded with ``seed``; both generators are saved with the state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from dosmatgen.errors import StoreError
from dosmatgen.surrogate.checkpoint import save_checkpoint
from dosmatgen.surrogate.model import DOSSurrogate
from dosmatgen.training.engine import EpochRecord, StepLoss

CHECKPOINT_NAME = "surrogate.pt"


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


class SurrogateTask:
    """``identity``: what a resume must share with the interrupted run; ``info``: recorded in the checkpoint."""

    kind = "surrogate"

    def __init__(self, model: DOSSurrogate, train_set, val_set, *, batch_size: int, seed: int, device: torch.device,
                 scaler, grid, info: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
        self.model, self.device, self.scaler, self.grid = model, device, scaler, grid
        self.info, self.identity = dict(info), dict(identity)
        self.generator = torch.Generator().manual_seed(seed)
        self.train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=self.generator)
        self.val_loader = DataLoader(val_set, batch_size=max(batch_size, 64), shuffle=False) if len(val_set) else None

    def build_model(self) -> nn.Module:
        return self.model

    def generators(self) -> dict[str, torch.Generator]:
        return {"loader": self.generator, "torch": torch.default_generator}

    def resume_identity(self) -> dict[str, Any]:
        return self.identity

    def batches(self, epoch: int):
        return self.train_loader

    def loss(self, model: nn.Module, batch, epoch: int) -> StepLoss:
        y = target_of(batch, model.config.target)
        loss = (model.forward_batch(batch) - y).abs().mean()
        return StepLoss(loss, {"loss": float(loss.detach())}, y.shape[0])

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        return None if self.val_loader is None else {"loss": mean_abs_error(model, self.val_loader, self.device)}

    def save_checkpoints(self, record: EpochRecord, out: Path) -> None:
        if record.improved:
            save_checkpoint(out / CHECKPOINT_NAME, record.model, self.scaler, self.grid,
                            {**self.info, "epoch": record.epoch, "val_mae": record.best_val})

    def extra_state(self) -> dict[str, Any]:
        return {"info": self.info}

    def load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.info = dict(extra["info"])
