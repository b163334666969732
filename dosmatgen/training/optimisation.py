"""The optimiser, its plateau schedule and one parameter update (backward, clipping, step, EMA)."""

from __future__ import annotations

import torch
from torch import nn


def build_optimiser(
    model: nn.Module, *, lr: float, weight_decay: float, lr_factor: float, lr_patience: int, min_lr: float
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """Adam and a ReduceLROnPlateau schedule (mode "min") on the monitored loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=lr_factor, patience=lr_patience, min_lr=min_lr
    )
    return optimizer, scheduler


def clip_gradients(model: nn.Module, grad_clip: float | None, mode: str) -> None:
    """Clip each gradient entry ("value") or the global L2 norm ("norm") at ``grad_clip``; None or 0: no clipping."""
    if not grad_clip:
        return
    if mode == "value":
        torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
    elif mode == "norm":
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        raise ValueError(f"grad_clip_mode must be 'value' or 'norm', got {mode!r}")


def apply_update(
    model: nn.Module,
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    grad_clip: float | None,
    grad_clip_mode: str,
    ema: nn.Module | None = None,
) -> None:
    """Backward of ``loss`` (gradients zeroed by the caller before the forward pass), clipping, the optimiser step
    and the EMA update."""
    loss.backward()
    clip_gradients(model, grad_clip, grad_clip_mode)
    optimizer.step()
    if ema is not None:
        ema.update_parameters(model)
