"""One compatibility rule for the checkpoints a run combines, at both call sites: ``dosmatgen sample``
(sampling.request.prepare) and ``dosmatgen evaluate`` (evaluation.models.load_regressor_model)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dosmatgen.errors import CheckpointError
from dosmatgen.evaluation.models import load_denoiser, load_regressor_model
from dosmatgen.regressor.checkpoint import load_regressor, save_regressor
from dosmatgen.sampling.request import SamplingRequest, prepare

DENOISER = "bundled:dosmatgen-small"
REGRESSOR = "bundled:regressor-small"


def _regressor_with_scaler(tmp_path, name: str, **scale):
    reg = load_regressor(REGRESSOR)
    site = {k: v.clone() for k, v in reg.scalers["site"].items()}
    for key, factor in scale.items():
        site[key] = site[key] * factor + (0.5 if key == "mean" else 0.0)
    return save_regressor(tmp_path / f"{name}.pt", dataclasses.replace(reg, scalers={**reg.scalers, "site": site}))


def _sample(regressor) -> None:
    prepare(SamplingRequest(checkpoint=DENOISER, target="target-Au3Ni", guidance="classifier", regressor=regressor, n=1))


@pytest.mark.parametrize("changed", ["mean", "std"])
def test_a_regressor_scaler_from_other_data_is_refused_when_sampling_and_evaluating(tmp_path, changed):
    """Before the unification, sampling compared the mean only: a regressor whose std differs guided silently."""
    bad = _regressor_with_scaler(tmp_path, changed, **{changed: 2.0})
    with pytest.raises(CheckpointError, match="regressor's site-DOS scaler differs from the denoiser's"):
        _sample(bad)
    with pytest.raises(CheckpointError, match="regressor's site-DOS scaler differs from the denoiser's"):
        load_regressor_model(bad, load_denoiser(DENOISER))


def test_the_shipped_regressor_fits_the_shipped_denoiser_at_both_call_sites():
    _sample(REGRESSOR)
    model, reg = load_regressor_model(REGRESSOR, load_denoiser(DENOISER))
    assert isinstance(model, torch.nn.Module) and "site" in reg.scalers


def test_a_regressor_without_site_scaler_is_refused_naming_the_file(tmp_path):
    reg = load_regressor(REGRESSOR)
    path = save_regressor(tmp_path / "noscaler.pt", dataclasses.replace(reg, scalers={}))
    for check in (lambda: _sample(path), lambda: load_regressor_model(path, load_denoiser(DENOISER))):
        with pytest.raises(CheckpointError, match=rf"{path}: the regressor checkpoint holds no site-DOS scaler"):
            check()
