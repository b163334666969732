"""The shipped unconditional model for classifier guidance (issue 19): `bundled:dosmatgen-small-uncond`."""

from __future__ import annotations

from dataclasses import replace

from dosmatgen.checkpoint_paths import bundled_checkpoints, resolve_checkpoint
from dosmatgen.evaluation.unconditional import DEFAULT_UNCONDITIONAL, load_unconditional
from dosmatgen.training.checkpoint import load_checkpoint


def test_the_bundled_unconditional_model_fits_dosmatgen_small():
    assert "dosmatgen-small-uncond" in bundled_checkpoints()
    path = resolve_checkpoint(DEFAULT_UNCONDITIONAL)
    assert path.name == "dosmatgen-small-uncond.pt" and path.is_file()
    small = load_checkpoint("bundled:dosmatgen-small")
    uncond = load_checkpoint(path)
    assert uncond.model_config.cond_mode == "none"  # no DOS input at all
    assert replace(uncond.model_config, cond_mode="site") == small.model_config  # otherwise the same network
    assert uncond.diffusion_config == small.diffusion_config
    assert not any(k.startswith("cond_projection") for k in uncond.inference_state())
    assert path.stat().st_size <= resolve_checkpoint("bundled:dosmatgen-small").stat().st_size
    loaded = load_unconditional(DEFAULT_UNCONDITIONAL, small, resolve_checkpoint("bundled:dosmatgen-small"))
    assert loaded.model is not None and "separate unconditional model" in loaded.describe()
    assert load_unconditional("cfg", small, path).model is None


def test_an_unconditional_run_warm_starts_from_the_conditioned_model_without_its_projection():
    from pathlib import Path

    import pytest
    import torch

    from dosmatgen.errors import CheckpointError
    from dosmatgen.model.cspnet import CSPNetDenoiser
    from dosmatgen.training.config import load_run_config
    from dosmatgen.training.warm_start import warm_start_weights

    config = load_run_config(Path(__file__).resolve().parents[1] / "configs" / "model" / "small-uncond.yaml")
    weights = warm_start_weights("bundled:dosmatgen-small", config)
    model = CSPNetDenoiser(config.model)
    model.load_state_dict(weights)  # strict: exactly the unconditional network's keys
    source = load_checkpoint("bundled:dosmatgen-small").inference_state(use_ema=True)
    assert set(source) - set(weights) == {k for k in source if k.startswith("cond_projection.")} != set()
    assert all(torch.equal(weights[k], source[k]) for k in weights)
    # only the conditioning may differ: another width is still refused
    wider = replace(config, model=replace(config.model, hidden_dim=64))
    with pytest.raises(CheckpointError, match="hidden_dim"):
        warm_start_weights("bundled:dosmatgen-small", wider)


def test_the_bundled_unconditional_model_was_trained_from_scratch():
    """Issue 19 asks for an independently trained unconditional model: the shipped checkpoint is the best epoch of
    the from-scratch run whose log ships beside it (a random start: validation loss far above the trained value at
    epoch 1), not a fine-tuned copy of the CFG model's weights."""
    import json
    from pathlib import Path

    import torch

    log = Path(__file__).resolve().parents[1] / "docs" / "embedded" / "dosmatgen-small-uncond.metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert "init_from" not in rows[0] and rows[0]["epoch"] == 1 and rows[0]["val_loss"] > 10.0
    best = min(rows, key=lambda r: r["val_loss"])
    ckpt = load_checkpoint(DEFAULT_UNCONDITIONAL)
    assert ckpt.epoch == best["epoch"] and abs(ckpt.best_val - best["val_loss"]) < 1e-9
    # and its weights are not the CFG model's: the typical layer differs by more than fine-tuning moves it
    small = load_checkpoint("bundled:dosmatgen-small").inference_state(use_ema=True)
    mine = ckpt.inference_state(use_ema=True)
    rel = [float((mine[k] - small[k]).norm() / small[k].norm().clamp_min(1e-12)) for k in mine if k.endswith("weight")]
    assert sorted(rel)[len(rel) // 2] > 0.5, sorted(rel)
