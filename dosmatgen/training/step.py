"""One optimisation step and the validation loss, as library functions (Ray Train calls them per worker)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID, EnergyGrid
from dosmatgen.model.conditioning import DOSCondition, condition_from_batch
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.training.condition_dropout import ConditionDropoutConfig, DropoutDraws, apply_condition_dropout
from dosmatgen.training.keyed_randomness import StepDraws
from dosmatgen.training.optimisation import apply_update


def unwrap(model: nn.Module) -> nn.Module:
    """The bare denoiser inside a DistributedDataParallel / AveragedModel wrapper."""
    while hasattr(model, "module"):
        model = model.module
    return model


def condition_grid(config: DenoiserConfig) -> EnergyGrid:
    """The energy grid of the condition bins: SITE_GRID (400) / TOTAL_GRID (256), or -10..10 eV with cond_dim bins."""
    for grid in (SITE_GRID, TOTAL_GRID):
        if grid.n == config.cond_dim and config.cond_mode == ("site" if grid is SITE_GRID else "total"):
            return grid
    return EnergyGrid(-10.0, 10.0, max(config.cond_dim, 2))


def training_condition(
    batch,
    config: DenoiserConfig,
    dropout: ConditionDropoutConfig | None,
    generator: torch.Generator | None = None,
    draws: DropoutDraws | None = None,
) -> DOSCondition | None:
    """The condition a training step feeds the model: the batch's full DOS, randomised by ``dropout``
    (None = always the full condition) with uniforms from ``generator`` or the pre-drawn ``draws``."""
    cond = condition_from_batch(batch, config)
    if cond is None or dropout is None:
        return cond
    return apply_condition_dropout(
        cond, batch.batch, int(batch.num_atoms.numel()), config.cond_mode, condition_grid(config), dropout, generator,
        draws=draws,
    )


def denoiser_loss(
    model: nn.Module,
    diffusion: JointDiffusion,
    batch,
    *,
    dropout: ConditionDropoutConfig | None = ConditionDropoutConfig(),
    generator: torch.Generator | None = None,
    draws: StepDraws | None = None,
    atom_scale: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch (already on the model's device): the total to minimise and the terms
    {"loss", "lattice", "coords", "types"} as floats. Randomness (condition dropout, t, noise) comes from
    ``generator``, or from the pre-drawn per-structure ``draws``; ``atom_scale`` weights the per-atom terms (see
    :func:`train_step`)."""
    config = unwrap(model).config
    cond = training_condition(batch, config, dropout, generator, None if draws is None else draws.dropout)
    if draws is None:
        terms = diffusion.training_loss(model, batch, cond=cond, generator=generator, atom_scale=atom_scale)
    else:
        terms = diffusion.training_loss(model, batch, cond=cond, t=draws.t, noise=draws.noise, atom_scale=atom_scale)
    out = terms.as_floats()
    out["loss"] = out.pop("total")
    return terms.total, out


def train_step(
    model: nn.Module,
    diffusion: JointDiffusion,
    batch,
    optimizer: torch.optim.Optimizer,
    *,
    dropout: ConditionDropoutConfig | None = ConditionDropoutConfig(),
    grad_clip: float | None = 0.5,
    grad_clip_mode: str = "value",
    ema: nn.Module | None = None,
    generator: torch.Generator | None = None,
    draws: StepDraws | None = None,
    atom_scale: float = 1.0,
) -> dict[str, float]:
    """Forward, backward, clip, optimizer step and EMA update on one batch (already on the model's device).

    Args:
        model: the denoiser (possibly DDP-wrapped); ``unwrap(model).config`` gives its DenoiserConfig.
        dropout: classifier-free condition randomisation (None: always the full condition).
        grad_clip: clip threshold; ``grad_clip_mode`` "value" (clip each gradient entry, the paper's choice) or
            "norm" (global L2 norm). None or 0 disables clipping.
        ema: an ``AveragedModel`` updated after the step, or None.
        generator: the source of all randomness of the step (t, noise, condition dropout).
        draws: t, noise and dropout uniforms drawn beforehand (per structure, see
            :mod:`dosmatgen.training.keyed_randomness`); ``generator`` is then unused.
        atom_scale: weight of the per-atom loss terms (data-parallel workers pass world × local atoms / global
            atoms; see :func:`dosmatgen.diffusion.loss.joint_loss`).
    Returns:
        {"loss", "lattice", "coords", "types"} as floats (before the update).
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, terms = denoiser_loss(model, diffusion, batch, dropout=dropout, generator=generator, draws=draws,
                                 atom_scale=atom_scale)
    apply_update(model, total, optimizer, grad_clip=grad_clip, grad_clip_mode=grad_clip_mode, ema=ema)
    return terms


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    diffusion: JointDiffusion,
    batches: Iterable,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """Mean loss terms over ``batches`` with the FULL condition, t and noise drawn from a generator seeded with
    ``seed`` (so the number is comparable between epochs). Weighted by crystals per batch."""
    model.eval()
    config = unwrap(model).config
    gen = torch.Generator(device=device).manual_seed(seed)
    sums: dict[str, float] = {}
    count = 0
    for batch in batches:
        batch = batch.to(device)
        b = int(batch.num_atoms.numel())
        terms = diffusion.training_loss(model, batch, cond=condition_from_batch(batch, config), generator=gen).as_floats()
        terms["loss"] = terms.pop("total")
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * b
        count += b
    if count == 0:
        raise ValueError("evaluate_loss got no batches")
    return {k: v / count for k, v in sums.items()}
