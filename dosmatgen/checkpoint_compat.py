"""Compatibility checks between the checkpoints one sampling or evaluation run combines (one rule for both):

* a checkpoint's site-DOS scaler must exist and have :data:`~dosmatgen.dos.grid.SITE_GRID` bins;
* a classifier-guidance regressor must share the denoiser's diffusion config, element vocabulary, output width
  and site-DOS scaler (mean AND standard deviation: a scaler fitted on other data shifts or stretches the
  guidance target);
* a separately trained unconditional model must share the diffusion config and the vocabulary.

Every failure is a :class:`~dosmatgen.errors.CheckpointError` naming the offending file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.errors import CheckpointError

if TYPE_CHECKING:
    from dosmatgen.dos.scaler import PerBinStandardScaler
    from dosmatgen.regressor.checkpoint import RegressorCheckpoint
    from dosmatgen.training.checkpoint import DenoiserCheckpoint


def stored_scaler(scalers: Mapping, path: str | Path, what: str, kind: str = "site") -> "PerBinStandardScaler":
    """The ``kind`` ("site" or "total") DOS scaler stored in a checkpoint, checked against that kind's grid
    (``what`` names the checkpoint kind in errors)."""
    from dosmatgen.training.checkpoint import scalers_from_tensors

    grid, name = {"site": (SITE_GRID, "SITE_GRID"), "total": (TOTAL_GRID, "TOTAL_GRID")}[kind]
    if kind not in scalers:
        raise CheckpointError(f"{path}: the {what} holds no {kind}-DOS scaler, so a DOS cannot be scaled as in training")
    scaler = scalers_from_tensors({kind: scalers[kind]})[kind]
    if scaler.n_bins != grid.n:
        raise CheckpointError(f"{path}: the {what}'s {kind} scaler has {scaler.n_bins} bins, expected {grid.n} ({name})")
    return scaler


def site_scaler(scalers: Mapping, path: str | Path, what: str) -> "PerBinStandardScaler":
    """The site-DOS scaler stored in a checkpoint (``what`` names the checkpoint kind in errors)."""
    return stored_scaler(scalers, path, what, "site")


def check_regressor_fits(reg: "RegressorCheckpoint", reg_path: str | Path, denoiser: "DenoiserCheckpoint",
                         denoiser_path: str | Path) -> None:
    """The classifier-guidance regressor fits the denoiser it guides."""
    if reg.diffusion_config != denoiser.diffusion_config:
        raise CheckpointError(f"{reg_path}: the regressor was trained on a different diffusion config than {denoiser_path}")
    num_classes = denoiser.model_config.num_classes
    if reg.config.num_classes != num_classes or reg.config.out_dim != SITE_GRID.n:
        raise CheckpointError(f"{reg_path}: regressor config does not fit (classes {reg.config.num_classes} vs "
                              f"{num_classes}, outputs {reg.config.out_dim} vs {SITE_GRID.n})")
    mine = site_scaler(reg.scalers, reg_path, "regressor checkpoint")
    theirs = site_scaler(denoiser.scalers, denoiser_path, "checkpoint")
    if not np.allclose(mine.mean, theirs.mean) or not np.allclose(mine.std, theirs.std):
        raise CheckpointError(f"{reg_path}: the regressor's site-DOS scaler differs from the denoiser's (trained on other data)")


def check_unconditional_fits(unc: "DenoiserCheckpoint", unc_path: str | Path, denoiser: "DenoiserCheckpoint",
                             denoiser_path: str | Path) -> None:
    """A separately trained unconditional model fits the conditional denoiser."""
    if unc.diffusion_config != denoiser.diffusion_config or unc.model_config.num_classes != denoiser.model_config.num_classes:
        raise CheckpointError(f"{unc_path}: the unconditional model's config does not match {denoiser_path}")
