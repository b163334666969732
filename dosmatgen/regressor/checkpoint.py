"""Regressor checkpoints: plain dicts that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen import __version__
from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.errors import CheckpointError
from dosmatgen.io.atomic import atomic_write
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.regressor.model import NoisyDOSRegressor

REGRESSOR_FORMAT = "dosmatgen-regressor"
REGRESSOR_FORMAT_VERSION = 1


@dataclass
class RegressorCheckpoint:
    """Config, diffusion config (the noise the regressor was trained on), weights, site scaler, metrics."""

    config: RegressorConfig
    diffusion_config: DiffusionConfig
    state: dict[str, torch.Tensor]
    scalers: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    dosmatgen_version: str = __version__
    #: where it was trained: {"store", "train_split", "val_split"} (empty in checkpoints written before this was kept)
    data: dict[str, Any] = field(default_factory=dict)

    def build_model(self, device: torch.device | str = "cpu") -> NoisyDOSRegressor:
        model = NoisyDOSRegressor(self.config)
        try:
            model.load_state_dict(self.state)
        except RuntimeError as exc:
            raise CheckpointError(f"regressor weights do not fit its config: {str(exc).splitlines()[0]}") from None
        return model.to(device).eval()


def save_regressor(path: str | Path, ckpt: RegressorCheckpoint) -> Path:
    path = Path(path)
    payload = {
        "format": REGRESSOR_FORMAT,
        "format_version": REGRESSOR_FORMAT_VERSION,
        "dosmatgen_version": ckpt.dosmatgen_version,
        "config": ckpt.config.to_dict(),
        "diffusion_config": ckpt.diffusion_config.to_dict(),
        "state": ckpt.state,
        "scalers": ckpt.scalers,
        "metrics": dict(ckpt.metrics),
        "data": dict(ckpt.data),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb", encoding=None) as fh:
        torch.save(payload, fh)
    return path


def load_regressor(path: str | Path, map_location: torch.device | str = "cpu") -> RegressorCheckpoint:
    """Load a regressor checkpoint; CheckpointError for a missing, unreadable or foreign file."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: regressor checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != REGRESSOR_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a dosmatgen DOS-regressor checkpoint (format {found!r})")
    if payload.get("format_version") != REGRESSOR_FORMAT_VERSION:
        raise CheckpointError(f"{path}: regressor format version {payload.get('format_version')}, expected {REGRESSOR_FORMAT_VERSION}")
    try:
        config = RegressorConfig.from_dict(payload["config"])
        diffusion = DiffusionConfig.from_dict(payload["diffusion_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid config in regressor checkpoint ({exc})") from None
    return RegressorCheckpoint(
        config=config,
        diffusion_config=diffusion,
        state=payload["state"],
        scalers=payload.get("scalers") or {},
        metrics=payload.get("metrics") or {},
        dosmatgen_version=str(payload.get("dosmatgen_version", "unknown")),
        data=payload.get("data") or {},
    )
