"""Denoiser checkpoints: plain dicts of tensors and Python primitives that load with ``torch.load(weights_only=True)``.

A checkpoint holds the model, diffusion, conditioning and training configs, the model weights, the optional EMA
weights, optimizer + LR-scheduler + RNG states (exact resume), the DOS scalers (as tensors), the element
vocabulary, the distribution of atom counts in the training set and the dosmatgen version.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen import __version__
from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.elements import NUM_ELEMENT_CLASSES, symbol
from dosmatgen.errors import CheckpointError
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser

CHECKPOINT_FORMAT = "dosmatgen-denoiser"
CHECKPOINT_FORMAT_VERSION = 1


def element_vocabulary() -> list[str]:
    """Symbols of the 100 element classes; class index = Z - 1."""
    return [symbol(z) for z in range(1, NUM_ELEMENT_CLASSES + 1)]


def scalers_to_tensors(scalers: Mapping[str, Any] | None) -> dict[str, dict[str, torch.Tensor]]:
    """{"site": scaler, "total": scaler} (objects with ``to_arrays()``, or dicts of arrays) -> dicts of tensors."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, scaler in (scalers or {}).items():
        arrays = scaler.to_arrays() if hasattr(scaler, "to_arrays") else dict(scaler)
        out[str(name)] = {k: torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}
    return out


def scalers_from_tensors(stored: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    """Inverse of :func:`scalers_to_tensors`: {"site": PerBinStandardScaler, ...}."""
    from dosmatgen.dos.scaler import PerBinStandardScaler

    return {name: PerBinStandardScaler.from_arrays({k: v.numpy() for k, v in arrays.items()}) for name, arrays in stored.items()}


@dataclass
class DenoiserCheckpoint:
    model_config: DenoiserConfig
    diffusion_config: DiffusionConfig
    model_state: dict[str, torch.Tensor]
    conditioning: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    ema_state: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] | None = None
    epoch: int = 0
    global_step: int = 0
    best_val: float | None = None
    scalers: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    element_vocabulary: list[str] = field(default_factory=element_vocabulary)
    num_atoms_counts: list[int] = field(default_factory=list)
    dosmatgen_version: str = __version__

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "dosmatgen_version": self.dosmatgen_version,
            "model_config": self.model_config.to_dict(),
            "diffusion_config": self.diffusion_config.to_dict(),
            "conditioning": dict(self.conditioning),
            "training": dict(self.training),
            "model_state": self.model_state,
            "ema_state": self.ema_state,
            "optimizer_state": self.optimizer_state,
            "scheduler_state": self.scheduler_state,
            "rng_state": self.rng_state,
            "epoch": int(self.epoch),
            "global_step": int(self.global_step),
            "best_val": None if self.best_val is None else float(self.best_val),
            "scalers": self.scalers,
            "element_vocabulary": list(self.element_vocabulary),
            "num_atoms_counts": [int(c) for c in self.num_atoms_counts],
        }

    def inference_state(self, use_ema: bool = True) -> dict[str, torch.Tensor]:
        """The weights to sample with: the EMA weights when present and asked for, else the raw weights."""
        if use_ema and self.ema_state is not None:
            prefix = "module."
            return {k[len(prefix):]: v for k, v in self.ema_state.items() if k.startswith(prefix)}
        return self.model_state

    def build_model(self, use_ema: bool = True, device: torch.device | str = "cpu") -> CSPNetDenoiser:
        """A CSPNetDenoiser with this checkpoint's config and weights, in eval mode."""
        model = CSPNetDenoiser(self.model_config)
        try:
            model.load_state_dict(self.inference_state(use_ema))
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint weights do not fit its model config: {str(exc).splitlines()[0]}") from None
        return model.to(device).eval()


def save_checkpoint(path: str | Path, checkpoint: DenoiserCheckpoint) -> Path:
    """Write atomically (temporary file + rename), so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(checkpoint.to_payload(), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


_REQUIRED = ("format", "format_version", "model_config", "diffusion_config", "model_state")


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``"key: checkpoint X vs requested Y"`` for every key where two config dicts differ."""
    return [f"{k}: checkpoint {a.get(k)!r} vs requested {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def load_checkpoint(
    path: str | Path,
    expected_model_config: DenoiserConfig | None = None,
    expected_diffusion_config: DiffusionConfig | None = None,
    map_location: torch.device | str = "cpu",
) -> DenoiserCheckpoint:
    """Load with ``torch.load(weights_only=True)``.

    Raises CheckpointError when the file is missing or unreadable, is not a dosmatgen denoiser checkpoint, has an
    unsupported format version, or its model/diffusion config differs from the expected one (listing the keys).
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, zipfile errors, ...
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first_line})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        raise CheckpointError(f"{path}: not a dosmatgen denoiser checkpoint (missing keys)")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {payload['format']!r}, expected {CHECKPOINT_FORMAT!r}")
    if payload["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload['format_version']}, this dosmatgen reads {CHECKPOINT_FORMAT_VERSION}")
    try:
        model_config = DenoiserConfig.from_dict(payload["model_config"])
        diffusion_config = DiffusionConfig.from_dict(payload["diffusion_config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid config in checkpoint ({exc})") from None
    if expected_model_config is not None and model_config != expected_model_config:
        diff = config_differences(model_config.to_dict(), expected_model_config.to_dict())
        raise CheckpointError(f"{path}: model config does not match ({'; '.join(diff)})")
    if expected_diffusion_config is not None and diffusion_config != expected_diffusion_config:
        diff = config_differences(diffusion_config.to_dict(), expected_diffusion_config.to_dict())
        raise CheckpointError(f"{path}: diffusion config does not match ({'; '.join(diff)})")
    return DenoiserCheckpoint(
        model_config=model_config,
        diffusion_config=diffusion_config,
        model_state=payload["model_state"],
        conditioning=payload.get("conditioning") or {},
        training=payload.get("training") or {},
        ema_state=payload.get("ema_state"),
        optimizer_state=payload.get("optimizer_state"),
        scheduler_state=payload.get("scheduler_state"),
        rng_state=payload.get("rng_state"),
        epoch=int(payload.get("epoch", 0)),
        global_step=int(payload.get("global_step", 0)),
        best_val=payload.get("best_val"),
        scalers=payload.get("scalers") or {},
        element_vocabulary=list(payload.get("element_vocabulary") or element_vocabulary()),
        num_atoms_counts=list(payload.get("num_atoms_counts") or []),
        dosmatgen_version=str(payload.get("dosmatgen_version", "unknown")),
    )
