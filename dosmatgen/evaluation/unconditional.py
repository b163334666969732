"""The unconditional model of the evaluation's classifier-guidance mode.

The paper's classifier guidance steers an independently trained unconditional model with a time-dependent DOS
regressor. By default the evaluation uses the shipped one, ``bundled:dosmatgen-small-uncond`` (trained with no DOS
input; docs/embedded-models.md). ``"cfg"`` instead uses the evaluated CFG denoiser with every condition dropped
(its unconditional half, trained on the 20 % of steps without condition). Any other value is a checkpoint path.
The report records which one was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.errors import CheckpointError
from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint

DEFAULT_UNCONDITIONAL = "bundled:dosmatgen-small-uncond"
#: the evaluated denoiser with every condition dropped
CFG_DROPPED = "cfg"


@dataclass
class UnconditionalModel:
    """``model`` None = the evaluated denoiser with its condition dropped; else a separate checkpoint."""

    spec: str
    path: Path | None = None
    checkpoint: DenoiserCheckpoint | None = None
    model: nn.Module | None = None

    def describe(self) -> str:
        if self.path is None:
            return "the evaluated denoiser with every condition dropped (--unconditional-checkpoint cfg)"
        return f"separate unconditional model {self.spec} (cond_mode {self.checkpoint.model_config.cond_mode!r})"


def load_unconditional(spec: str | Path, denoiser: DenoiserCheckpoint, denoiser_path: Path, *, use_ema: bool = True,
                       device: str = "cpu") -> UnconditionalModel:
    """The unconditional model for ``spec`` (see the module docstring). CheckpointError naming the file when it is
    missing or does not fit the denoiser (another diffusion or element vocabulary)."""
    text = str(spec)
    if text == CFG_DROPPED:
        return UnconditionalModel(CFG_DROPPED)
    path = resolve_checkpoint(text)
    ckpt = load_checkpoint(path, map_location=device)
    if ckpt.diffusion_config != denoiser.diffusion_config:
        raise CheckpointError(f"{path}: the unconditional model was trained on a different diffusion config than "
                              f"{denoiser_path}; pass --unconditional-checkpoint with a matching model, or "
                              f"--unconditional-checkpoint {CFG_DROPPED} to use the denoiser with its condition dropped")
    if ckpt.model_config.num_classes != denoiser.model_config.num_classes:
        raise CheckpointError(f"{path}: the unconditional model has {ckpt.model_config.num_classes} element classes, "
                              f"the denoiser {denoiser.model_config.num_classes}")
    return UnconditionalModel(text, path, ckpt, ckpt.build_model(use_ema=use_ema, device=device))
