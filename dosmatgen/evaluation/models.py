"""Loading the models an evaluation uses, with the compatibility checks between them.

* the denoiser (a site-conditioned CFG checkpoint for the ``cfg`` and ``none`` modes; any checkpoint for
  ``classifier``, whose unconditional score is the denoiser with every condition dropped);
* the optional time-dependent DOS regressor (classifier guidance), which must share the denoiser's diffusion,
  vocabulary and site-DOS scaler;
* the optional forward surrogate (the measuring instrument of the DOS match), which must predict site DOS on
  ``SITE_GRID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from dosmatgen.checkpoint_compat import check_regressor_fits, site_scaler
from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.dos.scaler import PerBinStandardScaler
from dosmatgen.errors import CheckpointError
from dosmatgen.surrogate.predict import SurrogatePredictor
from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint

if TYPE_CHECKING:
    from dosmatgen.regressor.checkpoint import RegressorCheckpoint


@dataclass
class LoadedDenoiser:
    path: Path
    checkpoint: DenoiserCheckpoint
    model: nn.Module
    diffusion: JointDiffusion
    site_scaler: PerBinStandardScaler | None  # scales the condition exactly as in training (None: total-DOS model)

    @property
    def site_conditioned(self) -> bool:
        cfg = self.checkpoint.model_config
        return cfg.cond_mode == "site" and cfg.cond_dim == SITE_GRID.n


def load_denoiser(path: str | Path, *, use_ema: bool = True, device: str = "cpu") -> LoadedDenoiser:
    """The denoiser, its diffusion and its site scaler (CheckpointError for a missing or unusable checkpoint)."""
    path = Path(path)
    ckpt = load_checkpoint(path, map_location=device)
    site = None if ckpt.model_config.cond_mode == "total" else site_scaler(ckpt.scalers, path, "checkpoint")
    return LoadedDenoiser(path, ckpt, ckpt.build_model(use_ema=use_ema, device=device),
                          JointDiffusion(ckpt.diffusion_config, device=device), site)


def require_site_conditioning(denoiser: LoadedDenoiser, guidance: str) -> None:
    """``cfg`` and ``none`` feed the site DOS to the denoiser itself: it must be a site-conditioned model."""
    cfg = denoiser.checkpoint.model_config
    if not denoiser.site_conditioned:
        raise CheckpointError(f"{denoiser.path}: --guidance {guidance} needs a site-DOS-conditioned denoiser "
                              f"(cond_mode 'site', {SITE_GRID.n} bins); this one has cond_mode {cfg.cond_mode!r}"
                              + (" (`dosmatgen evaluate` runs the CDOSGen check for it)" if cfg.cond_mode == "total" else ""))


def load_regressor_model(path: str | Path, denoiser: LoadedDenoiser, device: str = "cpu") -> tuple[nn.Module, RegressorCheckpoint]:
    """The classifier-guidance regressor in eval mode and its checkpoint (metrics, training data); CheckpointError
    when it does not fit the denoiser."""
    from dosmatgen.regressor.checkpoint import load_regressor

    path = Path(path)
    reg = load_regressor(path, map_location=device)
    check_regressor_fits(reg, path, denoiser.checkpoint, denoiser.path)
    return reg.build_model(device), reg


def load_surrogate(path: str | Path, device: str = "cpu") -> SurrogatePredictor:
    """The forward site-DOS surrogate (CheckpointError when it is a total-DOS model or on another grid)."""
    predictor = SurrogatePredictor.from_checkpoint(path, device=device)
    if predictor.target != "site":
        raise CheckpointError(f"{path}: the DOS-match protocol needs a site-DOS surrogate, this one predicts {predictor.target!r} DOS")
    if predictor.grid.n != SITE_GRID.n or not np.allclose(predictor.grid.energies, SITE_GRID.energies):
        raise CheckpointError(f"{path}: surrogate grid ({predictor.grid.n} points) is not SITE_GRID ({SITE_GRID.n} points)")
    return predictor
