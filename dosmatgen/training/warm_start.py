"""Warm start: begin a new training run from the weights of an existing denoiser checkpoint (fine-tuning).

Unlike ``resume``, which continues the same run (optimizer, scheduler, RNG and epoch count), a warm start is a
new run on possibly new data: only the weights are taken, the EMA weights when the checkpoint has them (the ones
that sample), and optimizer, schedule and epochs start afresh. The checkpoint's model and diffusion configs must
equal the run's, so a shipped model (``bundled:dosmatgen-small``) is fine-tuned with its own config
(``configs/model/small.yaml``).

One exception: an unconditional run (``cond_mode: none``) may start from a conditioned checkpoint whose config is
otherwise equal. Its condition projection is dropped (nothing else depends on it), so the run starts from the
network the conditioned model uses when the condition is left out; ``configs/model/small-uncond.yaml`` starts
from ``bundled:dosmatgen-small`` this way.

Data hygiene: the dataset splits are a hash of each structure id (:mod:`dosmatgen.data.split`), so a structure in
the test split of the first store stays in the test split of a grown store, and fine-tuning on the grown train
split never sees it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.training.checkpoint import load_checkpoint
from dosmatgen.training.config import RunConfig


def warm_start_weights(path: str | Path, config: RunConfig) -> dict[str, torch.Tensor]:
    """The weights to start from: the checkpoint's EMA weights (else its raw weights).

    Raises CheckpointError naming the file when it is missing, unreadable, or its model or diffusion config
    differs from ``config``'s (listing the keys); for a ``cond_mode: none`` run only the conditioning keys may
    differ, and the condition projection's weights are left out.
    """
    expected = config.model
    unconditional = config.model.cond_mode == "none"
    if unconditional:
        source = load_checkpoint(resolve_checkpoint(path), map_location="cpu").model_config
        expected = replace(config.model, cond_mode=source.cond_mode, window_channel=source.window_channel)
    ckpt = load_checkpoint(resolve_checkpoint(path), expected, config.diffusion, map_location="cpu")
    state = ckpt.inference_state(use_ema=True)
    if unconditional:
        state = {k: v for k, v in state.items() if not k.startswith("cond_projection.")}
    return {k: v.detach().clone() for k, v in state.items()}


def scaler_shift(path: str | Path, scalers: dict | None) -> float | None:
    """Largest change, in units of the checkpoint's standard deviation, between the DOS scaler means the checkpoint
    was trained with and ``scalers`` (the new store's, as tensors); None when either has none. Fine-tuning adapts
    to a small shift; a large one means the warm start begins far from its trained regime."""
    ckpt = load_checkpoint(resolve_checkpoint(path), map_location="cpu")
    if not ckpt.scalers or not scalers:
        return None
    worst = 0.0
    for name, old in ckpt.scalers.items():
        new = scalers.get(name)
        if new is None or "mean" not in old or "mean" not in new or old["mean"].shape != new["mean"].shape:
            continue
        std = old["std"].abs().clamp_min(1e-12) if "std" in old else torch.ones_like(old["mean"])
        worst = max(worst, float(((new["mean"].double() - old["mean"].double()).abs() / std.double()).max()))
    return worst
