"""The time-dependent DOS regressor as a :class:`~dosmatgen.training.engine.TrainingTask`.

Randomness: the data order of epoch e is the permutation of a generator seeded with seed × 1000003 + e; t and
noise come from one generator seeded with seed + 1 (saved with the state); validation draws from ``val_seed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset
from torch_geometric.loader import DataLoader

from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.diffusion.state import StateNoise
from dosmatgen.regressor.checkpoint import RegressorCheckpoint, save_regressor
from dosmatgen.regressor.model import NoisyDOSRegressor
from dosmatgen.training.engine import EpochRecord, StepLoss

LAST = "last.pt"
BEST = "best.pt"


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


@torch.no_grad()
def validation_loss(model, diffusion, loader, device, seed) -> float:
    """The loss over ``loader`` with t and noise from a generator seeded with ``seed``, weighted by crystals."""
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        n = int(batch.num_atoms.numel())
        total += float(regressor_loss(model, diffusion, batch, gen)) * n
        count += n
    return total / max(count, 1)


class RegressorTask:
    """Loss, data order, validation and checkpoints (``last.pt`` every epoch, ``best.pt`` on improvement) of the
    regressor. ``config`` is a ``RegressorRunConfig``; ``data`` the record of where it learns."""

    kind = "regressor"

    def __init__(self, config, model: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None, *,
                 device: torch.device, scalers: Mapping[str, Any], data: Mapping[str, Any], warm: Mapping[str, str]) -> None:
        tc = config.training
        self.config, self.model, self.train_dataset = config, model, train_dataset
        self.device = device
        self.scalers, self.data, self.warm = dict(scalers), dict(data), dict(warm)
        self.diffusion = JointDiffusion(config.diffusion, device=device)
        self.generator = torch.Generator(device=device).manual_seed(tc.seed + 1)
        self.val_loader = DataLoader(val_dataset, batch_size=tc.batch_size) if val_dataset is not None and len(val_dataset) else None

    def build_model(self) -> nn.Module:
        return self.model

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.generator}

    def resume_identity(self) -> dict[str, Any]:
        config = json.loads(json.dumps(self.config.to_dict()))
        config["training"].pop("epochs", None)  # a resumed run may aim further
        flat = {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()}
        return {"config": flat, "data": self.data}

    def batches(self, epoch: int):
        tc = self.config.training
        order = torch.randperm(len(self.train_dataset), generator=torch.Generator().manual_seed(tc.seed * 1_000_003 + epoch))
        return DataLoader(self.train_dataset, batch_size=tc.batch_size, sampler=order.tolist())

    def loss(self, model: nn.Module, batch, epoch: int) -> StepLoss:
        loss = regressor_loss(model, self.diffusion, batch, self.generator)
        return StepLoss(loss, {"loss": float(loss.detach())}, int(batch.num_atoms.numel()))

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        if self.val_loader is None:
            return None
        return {"loss": validation_loss(model, self.diffusion, self.val_loader, self.device, self.config.training.val_seed)}

    def save_checkpoints(self, record: EpochRecord, out: Path) -> None:
        ckpt = RegressorCheckpoint(self.config.regressor, self.config.diffusion, record.model.state_dict(), self.scalers,
                                   {**record.metrics, **self.warm}, data=self.data)
        save_regressor(out / LAST, ckpt)
        if record.improved:
            save_regressor(out / BEST, ckpt)

    def extra_state(self) -> dict[str, Any]:
        return {"warm": self.warm}

    def load_extra_state(self, extra: Mapping[str, Any]) -> None:
        self.warm = dict(extra["warm"])
