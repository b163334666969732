"""Training: a tiny model overfits, exact resume, checkpoints (weights_only, mismatch errors), the train CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from dosmatgen.diffusion import DiffusionConfig, JointDiffusion
from dosmatgen.errors import CheckpointError
from dosmatgen.model import CSPNetDenoiser, DenoiserConfig
from dosmatgen.training import (
    ConditionDropoutConfig,
    RunConfig,
    TrainConfig,
    evaluate_loss,
    load_checkpoint,
    load_run_config,
    train,
    train_step,
)
from dosmatgen.training.trainer import build_model, read_metrics
from synthetic_crystals import synthetic_crystals

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_run(**training) -> RunConfig:
    base = dict(batch_size=4, epochs=4, ema_decay=0.9, lr=2e-3, lr_patience=1, seed=3)
    return RunConfig(
        model=DenoiserConfig.tiny(),
        diffusion=DiffusionConfig(num_steps=50),
        conditioning=ConditionDropoutConfig(p_uncond=0.3, p_partial_sites=0.3, p_window=0.3),
        training=TrainConfig(**{**base, **training}),
    )


@pytest.mark.slow
def test_tiny_model_overfits_eight_structures():
    """Loss (at fixed evaluation t and noise, averaged over 32 draws) falls at least tenfold."""
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig(hidden_dim=128, num_layers=2, num_freqs=32, time_dim=16))
    diffusion = JointDiffusion(DiffusionConfig())  # the paper's schedules, T = 1000
    batch = Batch.from_data_list(synthetic_crystals(8, seed=0))
    before = evaluate_loss(model, diffusion, [batch] * 32, seed=7)
    steps = 1500
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        train_step(model, diffusion, batch, opt, dropout=None, generator=gen)
        sched.step()
    after = evaluate_loss(model, diffusion, [batch] * 32, seed=7)
    assert before["loss"] / after["loss"] >= 10.0, (before, after)
    assert after["types"] < before["types"] / 10 and after["lattice"] < before["lattice"] / 3


def _states_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        elif isinstance(a[k], dict):
            _states_equal(a[k], b[k])
        else:
            assert a[k] == b[k], k


def test_resume_reproduces_uninterrupted_run(tmp_path):
    data = synthetic_crystals(8, seed=1)
    val = synthetic_crystals(4, seed=2)
    cfg = _tiny_run()
    full = train(cfg, data, val, tmp_path / "full", progress=False)
    train(cfg, data, val, tmp_path / "split", progress=False, epochs=2)
    resumed = train(cfg, data, val, tmp_path / "split", progress=False, resume=True)
    assert full.epochs_completed == resumed.epochs_completed == 4
    assert full.global_step == resumed.global_step == 8
    a, b = load_checkpoint(full.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    _states_equal(a.model_state, b.model_state)
    _states_equal(a.ema_state, b.ema_state)
    _states_equal(a.optimizer_state["state"], b.optimizer_state["state"])
    assert a.scheduler_state == b.scheduler_state
    assert torch.equal(a.rng_state["generator"], b.rng_state["generator"])
    assert a.best_val == b.best_val
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time_s", "train_structures_per_s")} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "full")) == strip(read_metrics(tmp_path / "split"))
    # the run really trained: the weights moved away from the initialisation
    init = build_model(cfg).state_dict()
    assert not torch.equal(init["type_head.weight"], a.model_state["type_head.weight"])


def test_checkpoint_contents_and_weights_only(tmp_path):
    data = synthetic_crystals(8, seed=1)
    cfg = _tiny_run(epochs=1)
    scalers = {"site": {"mean": torch.zeros(400, dtype=torch.float64), "std": torch.ones(400, dtype=torch.float64)}}
    result = train(cfg, data, None, tmp_path, progress=False, scalers=scalers)
    raw = torch.load(result.last_checkpoint, weights_only=True)
    assert raw["format"] == "dosmatgen-denoiser" and raw["dosmatgen_version"]
    assert raw["model_config"] == cfg.model.to_dict() and raw["diffusion_config"] == cfg.diffusion.to_dict()
    assert len(raw["element_vocabulary"]) == 100 and raw["element_vocabulary"][:3] == ["H", "He", "Li"]
    assert torch.equal(raw["scalers"]["site"]["std"], torch.ones(400, dtype=torch.float64))
    sizes = [int(d.num_atoms) for d in data]
    assert raw["num_atoms_counts"] == [sizes.count(n) for n in range(max(sizes) + 1)]
    for key in ("optimizer_state", "scheduler_state", "rng_state", "ema_state"):
        assert raw[key] is not None, key
    assert (tmp_path / "best.pt").exists()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["epoch"] == 1 and rows[0]["train_loss"] > 0
    # build_model reproduces the trained (EMA) network
    ckpt = load_checkpoint(result.last_checkpoint)
    model = ckpt.build_model(use_ema=True)
    batch = Batch.from_data_list(data[:2])
    diff = JointDiffusion(cfg.diffusion)
    ema_weights = {k[len("module."):]: v for k, v in ckpt.ema_state.items() if k.startswith("module.")}
    assert torch.equal(model.state_dict()["type_head.weight"], ema_weights["type_head.weight"])
    loss = diff.training_loss(model, batch, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss.total)


def test_checkpoint_errors(tmp_path):
    data = synthetic_crystals(8, seed=1)
    cfg = _tiny_run(epochs=1)
    result = train(cfg, data, None, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="hidden_dim"):
        load_checkpoint(result.last_checkpoint, expected_model_config=replace(cfg.model, hidden_dim=64))
    with pytest.raises(CheckpointError, match="num_steps"):
        load_checkpoint(result.last_checkpoint, expected_diffusion_config=replace(cfg.diffusion, num_steps=60))
    other = replace(cfg, model=replace(cfg.model, num_layers=3))
    with pytest.raises(CheckpointError, match="num_layers"):
        train(other, data, None, tmp_path / "run", progress=False, resume=True, epochs=2)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        train(cfg, data, None, tmp_path / "run", progress=False)
    with pytest.raises(CheckpointError, match="not found"):
        train(cfg, data, None, tmp_path / "empty", progress=False, resume=True)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(result.last_checkpoint.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a dosmatgen denoiser checkpoint"):
        load_checkpoint(foreign)


def test_train_step_with_total_dos_and_norm_clipping():
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny(cond_mode="total"))
    diffusion = JointDiffusion(DiffusionConfig(num_steps=20))
    batch = Batch.from_data_list(synthetic_crystals(4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.type_head.weight.detach().clone()
    out = train_step(model, diffusion, batch, opt, dropout=ConditionDropoutConfig(), grad_clip=1.0,
                     grad_clip_mode="norm", generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "lattice", "coords", "types"} and out["loss"] > 0
    assert not torch.equal(before, model.type_head.weight)


def test_model_configs_load():
    for name, hidden in (("paper", 512), ("small", 128), ("tiny", 32)):
        cfg = load_run_config(REPO / "configs" / "model" / f"{name}.yaml")
        assert cfg.model.hidden_dim == hidden
    paper = load_run_config(REPO / "configs" / "model" / "paper.yaml")
    assert (paper.model.num_layers, paper.model.num_freqs, paper.model.time_dim) == (6, 128, 256)
    assert (paper.diffusion.lambda_types, paper.training.lr_factor, paper.training.grad_clip) == (20.0, 0.6, 0.5)


def test_train_cli(tmp_path):
    from dosmatgen.cli.main import main
    from surrogate_fixture_helpers import write_synthetic_dos_store

    store = write_synthetic_dos_store(tmp_path / "syn.zarr", n=20)
    cfg = REPO / "configs" / "model" / "tiny.yaml"
    out = tmp_path / "run"
    args = ["train", "--config", str(cfg), "--data", str(store), "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert (out / "last.pt").exists() and (out / "best.pt").exists() and (out / "config.yaml").exists()
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.epoch == 2 and set(ckpt.scalers) == {"site", "total"}
    # the checkpoint itself says where it was trained, so evaluation hygiene needs no config.yaml beside it
    assert ckpt.training["data"] == {"store": str(store), "train_split": "train", "val_split": "val"}
    from dosmatgen.evaluation.hygiene import denoiser_training_splits

    splits = denoiser_training_splits(tmp_path / "elsewhere.pt", ckpt.training)
    assert (splits.train_split, splits.val_split, splits.source) == ("train", "val", "checkpoint")
    assert main(args + ["--resume", "--epochs", "3"]) == 0
    assert load_checkpoint(out / "last.pt").epoch == 3
    assert len(read_metrics(out)) == 3
    # bad input: an existing run without --resume, a missing config, a bad config key
    assert main(args) == 2
    assert main(["train", "--config", str(tmp_path / "nope.yaml"), "--data", str(store)]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden_dims: 3\n")
    assert main(["train", "--config", str(bad), "--data", str(store), "--out", str(tmp_path / "r2")]) == 2


def test_warm_start_begins_from_the_checkpoint_ema_weights_and_records_it(tmp_path):
    data = synthetic_crystals(8, seed=1)
    first = train(_tiny_run(epochs=2), data, None, tmp_path / "first", progress=False)
    src = load_checkpoint(first.last_checkpoint)
    start = src.inference_state(use_ema=True)
    # lr 1e-30: the weights cannot move measurably, so after one epoch they are still the warm-start weights
    frozen = _tiny_run(epochs=1, lr=1e-30, min_lr=1e-31)
    warm = train(frozen, synthetic_crystals(6, seed=5), None, tmp_path / "warm", progress=False,
                 init_from=first.last_checkpoint)
    got = load_checkpoint(warm.last_checkpoint)
    assert got.model_state.keys() == start.keys()
    for k in start:
        torch.testing.assert_close(got.model_state[k], start[k], rtol=0, atol=1e-20)
    assert got.epoch == 1 and got.global_step == 2  # a new run: epochs and steps start afresh
    assert got.training["init_from"] == str(first.last_checkpoint)
    assert not torch.equal(build_model(frozen).state_dict()["type_head.weight"], start["type_head.weight"])
    # a resumed warm-started run keeps the record
    train(frozen, synthetic_crystals(6, seed=5), None, tmp_path / "warm", progress=False, resume=True, epochs=2)
    assert load_checkpoint(tmp_path / "warm" / "last.pt").training["init_from"] == str(first.last_checkpoint)
    with pytest.raises(ValueError, match="resume"):
        train(frozen, data, None, tmp_path / "warm", progress=False, resume=True, init_from=first.last_checkpoint)


def test_warm_start_refuses_a_checkpoint_of_another_model_or_a_missing_file(tmp_path):
    data = synthetic_crystals(8, seed=1)
    first = train(_tiny_run(epochs=1), data, None, tmp_path / "first", progress=False)
    other = replace(_tiny_run(epochs=1), model=replace(DenoiserConfig.tiny(), hidden_dim=DenoiserConfig.tiny().hidden_dim * 2))
    with pytest.raises(CheckpointError, match=r"last\.pt: model config does not match \(hidden_dim"):
        train(other, data, None, tmp_path / "other", progress=False, init_from=first.last_checkpoint)
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint not found"):
        train(_tiny_run(epochs=1), data, None, tmp_path / "missing", progress=False, init_from=tmp_path / "nope.pt")
    assert not (tmp_path / "other" / "last.pt").exists() and not (tmp_path / "missing" / "last.pt").exists()


def test_train_cli_fine_tunes_the_shipped_model(tmp_path):
    """`dosmatgen train --init-from bundled:dosmatgen-small` with the shipped config, one epoch on a small store."""
    from dosmatgen.cli.main import main
    from surrogate_fixture_helpers import write_synthetic_dos_store

    store = write_synthetic_dos_store(tmp_path / "syn.zarr", n=12)
    out = tmp_path / "ft"
    args = ["train", "--config", str(REPO / "configs" / "model" / "small.yaml"), "--data", str(store), "--out", str(out),
            "--no-progress", "--device", "cpu", "--epochs", "1", "--init-from", "bundled:dosmatgen-small"]
    assert main(args) == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt.epoch == 1 and ckpt.training["init_from"].endswith("dosmatgen-small.pt")
    assert main(args[:-2] + ["--resume", "--epochs", "2", "--init-from", "bundled:dosmatgen-small"]) == 2
    tiny = ["train", "--config", str(REPO / "configs" / "model" / "tiny.yaml"), "--data", str(store),
            "--out", str(tmp_path / "bad"), "--no-progress", "--epochs", "1", "--init-from", "bundled:dosmatgen-small"]
    assert main(tiny) == 2  # the tiny config is not the shipped model's
