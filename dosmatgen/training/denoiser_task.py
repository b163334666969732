"""The denoiser as a :class:`~dosmatgen.training.engine.TrainingTask`: for ``dosmatgen train`` in one process and
for every worker of a data-parallel run (``cluster/ray_train.py``).

Randomness: the model is initialised from ``training.seed``; the data order of epoch e is the order torch's
``DistributedSampler(shuffle=True, seed=seed, drop_last=True)`` gives for (seed, e) (in one process: the
permutation of a generator seeded with seed + e); t, noise and condition dropout come from one generator per rank
seeded with seed + 1 + rank, or per crystal from (seed, epoch, dataset index) with ``training.per_structure_noise``.
Validation draws from its own fixed ``val_seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler
from torch_geometric.loader import DataLoader

from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.training.checkpoint import DenoiserCheckpoint, save_checkpoint
from dosmatgen.training.config import RunConfig
from dosmatgen.training.distributed import DistributedHooks
from dosmatgen.training.engine import EpochRecord, StepLoss
from dosmatgen.training.keyed_randomness import keyed_step_draws
from dosmatgen.training.step import denoiser_loss, evaluate_loss

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"


def num_atoms_counts(dataset: Dataset) -> list[int]:
    """counts[n] = number of training crystals with n atoms (index 0 unused)."""
    sizes = [int(dataset[i].num_atoms.reshape(-1)[0]) for i in range(len(dataset))]
    counts = [0] * (max(sizes, default=0) + 1)
    for n in sizes:
        counts[n] += 1
    return counts


class DenoiserTask:
    """Loss, data order, validation and checkpoints (``last.pt`` every epoch, ``best.pt`` on improvement) of the
    denoiser. ``model_factory`` builds the initial model; ``training_record`` goes into the checkpoints'
    ``training`` section next to the training config (the data splits, the warm start)."""

    kind = "denoiser"

    def __init__(
        self,
        config: RunConfig,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        *,
        hooks: DistributedHooks,
        model_factory,
        scalers: Mapping[str, Any],
        num_atoms_counts: list[int] | None,
        training_record: Mapping[str, Any],
    ) -> None:
        tc = config.training
        self.config = config
        self.hooks = hooks
        self.train_dataset = train_dataset
        self.model_factory = model_factory
        self.scalers = dict(scalers)
        self.counts = num_atoms_counts
        self.record = dict(training_record)
        self.device = torch.device(hooks.device)
        self.diffusion = JointDiffusion(config.diffusion, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(tc.seed + 1 + hooks.rank)
        self.sampler = DistributedSampler(train_dataset, num_replicas=hooks.world_size, rank=hooks.rank, shuffle=True,
                                          seed=tc.seed, drop_last=True)
        self.per_rank_batch = tc.batch_size // hooks.world_size
        self.val_loader = (DataLoader(val_dataset, batch_size=tc.batch_size, shuffle=False)
                           if val_dataset is not None and len(val_dataset) else None)

    def build_model(self) -> nn.Module:
        return self.model_factory()

    def generators(self) -> dict[str, torch.Generator]:
        return {"noise": self.generator}

    def resume_identity(self) -> dict[str, Any]:
        return {"model config": self.config.model.to_dict(), "diffusion config": self.config.diffusion.to_dict()}

    def batches(self, epoch: int):
        self.sampler.set_epoch(epoch)
        return DataLoader(self.train_dataset, batch_size=self.per_rank_batch, sampler=self.sampler)

    def loss(self, model: nn.Module, batch, epoch: int) -> StepLoss:
        tc = self.config.training
        atom_scale = 1.0
        if self.hooks.world_size > 1:  # per-atom terms: the mean over the GLOBAL batch's atoms, as one process has it
            atoms = self.hooks.all_reduce(torch.tensor([float(batch.num_nodes)], dtype=torch.float64))
            atom_scale = self.hooks.world_size * batch.num_nodes / float(atoms[0])
        draws = keyed_step_draws(self.diffusion, batch, tc.seed, epoch) if tc.per_structure_noise else None
        total, terms = denoiser_loss(model, self.diffusion, batch, dropout=self.config.conditioning,
                                     generator=self.generator, draws=draws, atom_scale=atom_scale)
        return StepLoss(total, terms, int(batch.num_atoms.numel()))

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        if self.val_loader is None:
            return None
        return evaluate_loss(model, self.diffusion, self.val_loader, device=self.device, seed=self.config.training.val_seed)

    def save_checkpoints(self, record: EpochRecord, out: Path) -> None:
        if self.counts is None:
            self.counts = num_atoms_counts(self.train_dataset)
        cfg = self.config
        ckpt = DenoiserCheckpoint(
            model_config=cfg.model,
            diffusion_config=cfg.diffusion,
            model_state=record.model.state_dict(),
            conditioning=cfg.conditioning.to_dict(),
            training={**cfg.training.to_dict(), **self.record},
            ema_state=record.ema.state_dict() if record.ema is not None else None,
            optimizer_state=record.optimizer.state_dict(),
            scheduler_state=record.scheduler.state_dict(),
            rng_state={"generator": self.generator.get_state()},
            epoch=record.epoch,
            global_step=record.global_step,
            best_val=record.best_val,
            scalers=self.scalers,
            num_atoms_counts=self.counts,
        )
        save_checkpoint(out / LAST_CHECKPOINT, ckpt)
        if record.improved:
            save_checkpoint(out / BEST_CHECKPOINT, ckpt)

    def extra_state(self) -> dict[str, Any]:
        if self.counts is None:
            self.counts = num_atoms_counts(self.train_dataset)
        return {"training_record": self.record, "scalers": self.scalers, "num_atoms_counts": self.counts}

    def load_extra_state(self, extra: Mapping[str, Any]) -> None:
        # the warm start of the interrupted run travels on; scalers given now take precedence
        saved = dict(extra["training_record"])
        self.record = {**self.record, **{k: saved[k] for k in ("init_from", "init_scaler_shift") if k in saved}}
        self.scalers = self.scalers or dict(extra["scalers"])
        self.counts = list(extra["num_atoms_counts"])
