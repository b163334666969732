"""Bundled checkpoints: names resolve to the shipped files and load; other paths are left alone."""

from pathlib import Path

import pytest
import torch

from dosmatgen.checkpoint_paths import bundled_checkpoints, resolve_checkpoint
from dosmatgen.errors import CheckpointError


def test_bundled_names_resolve_to_shipped_files():
    assert {"dosmatgen-small", "surrogate-small", "regressor-small"} <= set(bundled_checkpoints())
    for name in ("dosmatgen-small", "surrogate-small", "regressor-small"):
        assert resolve_checkpoint(f"bundled:{name}").is_file()
        assert resolve_checkpoint(name) == resolve_checkpoint(f"bundled:{name}")


def test_other_paths_are_returned_unchanged(tmp_path):
    p = tmp_path / "mine.pt"
    assert resolve_checkpoint(p) == p
    assert resolve_checkpoint("runs/x/best.pt") == Path("runs/x/best.pt")


def test_shipped_checkpoints_load_with_weights_only():
    from dosmatgen.regressor.checkpoint import load_regressor
    from dosmatgen.surrogate.checkpoint import load_checkpoint as load_surrogate
    from dosmatgen.training.checkpoint import load_checkpoint

    ckpt = load_checkpoint("bundled:dosmatgen-small")
    assert ckpt.diffusion_config.beta_max == pytest.approx(0.99)
    model, scaler, grid, info = load_surrogate("bundled:surrogate-small")
    assert grid.n == 400
    reg = load_regressor("bundled:regressor-small")
    # the shipped regressor can guide the shipped denoiser: same diffusion, vocabulary, output grid and DOS scaler
    assert reg.diffusion_config == ckpt.diffusion_config
    assert reg.config.num_classes == ckpt.model_config.num_classes and reg.config.out_dim == grid.n
    for key in ("mean", "std"):
        assert torch.equal(reg.scalers["site"][key], ckpt.scalers["site"][key])
    reg.build_model()  # raises CheckpointError when its weights do not fit its config
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint("bundled:no-such-model")
