"""DOSSampler checkpoint: the score network, the K distribution of the training data, the guidance regressor and
the thermoelectric reference DOS, in one torch file (weights stored as float16 to keep the bundled file small;
tensors, strings and numbers only, so it loads with ``torch.load(weights_only=True)``; ``meta`` is JSON text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.dos_sampler.network import DosScoreNetwork, NetworkConfig
from dosmatgen.dos_sampler.property_regressor import PropertyRegressor, RegressorConfig
from dosmatgen.errors import DosmatgenError

FORMAT = "dossampler-v1"


@dataclass
class DosSampler:
    """Everything generation needs. ``k_values``: K of every training row (sampled at generation)."""

    network: DosScoreNetwork
    k_values: np.ndarray
    regressor: PropertyRegressor | None = None
    reference_te_dos: np.ndarray | None = None
    reference_te_id: str | None = None
    gap_placement: str = "centred"
    guidance_scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in state.items()}


def save_dossampler(path: str | Path, sampler: DosSampler) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "network": {"config": sampler.network.cfg.to_dict(), "state_dict": _half(sampler.network.state_dict())},
        "k_values": torch.as_tensor(np.asarray(sampler.k_values, dtype=np.float32)),
        "regressor": None
        if sampler.regressor is None
        else {"config": sampler.regressor.cfg.to_dict(), "state_dict": _half(sampler.regressor.state_dict())},
        "reference_te_dos": None
        if sampler.reference_te_dos is None
        else torch.as_tensor(np.asarray(sampler.reference_te_dos, dtype=np.float32)),
        "reference_te_id": sampler.reference_te_id,
        "gap_placement": sampler.gap_placement,
        "guidance_scale": float(sampler.guidance_scale),
        "meta": json.dumps(sampler.meta),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _float_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_dossampler(checkpoint: str | Path, device: str = "cpu") -> DosSampler:
    """Load a DOSSampler from a path or a bundled name such as ``bundled:dossampler-small``."""
    path = resolve_checkpoint(checkpoint)
    if not path.is_file():
        raise DosmatgenError(f"DOSSampler checkpoint {checkpoint!r} not found (looked at {path})")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise DosmatgenError(f"{path} is not a readable DOSSampler checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DosmatgenError(f"{path} is not a DOSSampler checkpoint (format {FORMAT!r} expected)")
    net = DosScoreNetwork(NetworkConfig(**payload["network"]["config"]))
    net.load_state_dict(_float_state(payload["network"]["state_dict"]))
    net.to(device).eval()
    reg = None
    if payload["regressor"] is not None:
        reg = PropertyRegressor(RegressorConfig(**payload["regressor"]["config"]))
        reg.load_state_dict(_float_state(payload["regressor"]["state_dict"]))
        reg.to(device).eval()
    ref = payload.get("reference_te_dos")
    return DosSampler(
        network=net,
        k_values=payload["k_values"].double().numpy(),
        regressor=reg,
        reference_te_dos=None if ref is None else ref.double().numpy(),
        reference_te_id=payload.get("reference_te_id"),
        gap_placement=payload.get("gap_placement", "centred"),
        guidance_scale=float(payload.get("guidance_scale", 1.0)),
        meta=json.loads(payload.get("meta", "{}")),
    )
