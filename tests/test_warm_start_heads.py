"""Warm start (fine-tuning) of the DOS surrogate and the classifier-guidance regressor: `--init-from CHECKPOINT`
starts from the checkpoint's weights, records it, and refuses a checkpoint of another model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from dosmatgen.cli.main import main
from dosmatgen.data.bundled import bundled_dataset_path
from dosmatgen.errors import CheckpointError
from dosmatgen.regressor.checkpoint import load_regressor
from dosmatgen.surrogate.checkpoint import load_checkpoint as load_surrogate
from dosmatgen.surrogate.config import SurrogateTrainConfig
from dosmatgen.surrogate.train import train_surrogate
from surrogate_fixture_helpers import write_synthetic_dos_store

STORE = str(bundled_dataset_path())
REPO = Path(__file__).resolve().parents[1]


def _same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-20)


def test_surrogate_warm_start(tmp_path):
    store = write_synthetic_dos_store(tmp_path / "syn.zarr", n=16)
    first = train_surrogate(store, tmp_path / "a", SurrogateTrainConfig(preset="tiny", epochs=2, batch_size=8, num_threads=1))
    start, _, _, _ = load_surrogate(first.checkpoint)
    # lr 1e-30 and no weight decay: one epoch cannot move the weights, so the checkpoint holds the warm-start weights
    frozen = SurrogateTrainConfig(preset="tiny", epochs=1, batch_size=8, lr=1e-30, min_lr=1e-31, weight_decay=0.0, num_threads=1)
    warm = train_surrogate(store, tmp_path / "b", frozen, init_from=first.checkpoint)
    got, _, _, info = load_surrogate(warm.checkpoint)
    _same_weights(got.state_dict(), start.state_dict())
    assert info["init_from"] == str(first.checkpoint)
    with pytest.raises(CheckpointError, match="surrogate model config does not match"):
        train_surrogate(store, tmp_path / "d", SurrogateTrainConfig(preset="small", epochs=1, num_threads=1), init_from=first.checkpoint)
    with pytest.raises(CheckpointError, match="nope.pt"):
        train_surrogate(store, tmp_path / "e", frozen, init_from=tmp_path / "nope.pt")


def test_surrogate_cli_fine_tunes_the_shipped_surrogate(tmp_path, capsys):
    store = write_synthetic_dos_store(tmp_path / "syn.zarr", n=12)
    small_cfg = yaml.safe_load((REPO / "configs" / "surrogate" / "small-cpu.yaml").read_text())
    small_cfg.update(epochs=1, num_threads=1, max_minutes=None)
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(yaml.safe_dump(small_cfg))
    out = tmp_path / "ft"
    assert main(["surrogate", "train", "--data", str(store), "--out", str(out), "--config", str(cfg),
                 "--init-from", "bundled:surrogate-small"]) == 0
    _, _, _, info = load_surrogate(out / "surrogate.pt")
    assert info["init_from"].endswith("surrogate-small.pt")
    capsys.readouterr()
    assert main(["surrogate", "train", "--data", str(store), "--out", str(tmp_path / "bad"), "--preset", "tiny",
                 "--epochs", "1", "--init-from", "bundled:surrogate-small"]) == 2
    assert "does not match" in capsys.readouterr().err


def _regressor_yaml(path, hidden=16, steps=12, lr=1e-3):
    path.write_text(yaml.safe_dump({
        "regressor": {"hidden_dim": hidden, "num_layers": 1, "num_freqs": 4, "time_dim": 8},
        "diffusion": {"num_steps": steps},
        "training": {"batch_size": 32, "epochs": 1, "max_batches_per_epoch": 2, "lr": lr, "min_lr": lr / 10},
        "data": {"val_split": None},
    }))
    return str(path)


def test_regressor_warm_start_cli(tmp_path, capsys):
    a = tmp_path / "a"
    assert main(["train-regressor", "--config", _regressor_yaml(tmp_path / "a.yaml"), "--data", STORE, "--out", str(a)]) == 0
    start = load_regressor(a / "last.pt")
    assert start.data == {"store": STORE, "train_split": "train", "val_split": None}  # where it learned, for evaluate
    b = tmp_path / "b"
    assert main(["train-regressor", "--config", _regressor_yaml(tmp_path / "b.yaml", lr=1e-30), "--data", STORE,
                 "--out", str(b), "--init-from", str(a / "last.pt")]) == 0
    got = load_regressor(b / "last.pt")
    _same_weights(got.state, start.state)
    assert got.metrics["init_from"] == str(a / "last.pt")
    capsys.readouterr()
    assert main(["train-regressor", "--config", _regressor_yaml(tmp_path / "c.yaml", hidden=24), "--data", STORE,
                 "--out", str(tmp_path / "c"), "--init-from", str(a / "last.pt")]) == 2
    assert "regressor config does not match (hidden_dim" in capsys.readouterr().err
    assert main(["train-regressor", "--config", _regressor_yaml(tmp_path / "d.yaml", steps=13), "--data", STORE,
                 "--out", str(tmp_path / "d"), "--init-from", str(a / "last.pt")]) == 2
    assert "diffusion config does not match (num_steps" in capsys.readouterr().err
    assert not (tmp_path / "c" / "last.pt").exists() and not (tmp_path / "d" / "last.pt").exists()


def test_regressor_resume_continues_exactly(tmp_path, capsys):
    """3 epochs, or 2 then --resume to 3, give the same weights and log; another config or no state is refused."""
    import json

    cfg = _regressor_yaml(tmp_path / "r.yaml")
    run = ["train-regressor", "--config", cfg, "--data", STORE]
    assert main(run + ["--out", str(tmp_path / "straight"), "--epochs", "3"]) == 0
    assert main(run + ["--out", str(tmp_path / "resumed"), "--epochs", "2"]) == 0
    assert main(run + ["--out", str(tmp_path / "resumed"), "--epochs", "3", "--resume"]) == 0
    _same_weights(load_regressor(tmp_path / "resumed" / "last.pt").state, load_regressor(tmp_path / "straight" / "last.pt").state)
    logs = [[json.loads(l) for l in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("straight", "resumed")]
    assert [r["epoch"] for r in logs[1]] == [1, 2, 3]
    assert [r["train_loss"] for r in logs[1]] == pytest.approx([r["train_loss"] for r in logs[0]], abs=1e-6)
    capsys.readouterr()
    assert main(["train-regressor", "--config", _regressor_yaml(tmp_path / "o.yaml", lr=2e-3), "--data", STORE,
                 "--out", str(tmp_path / "resumed"), "--resume"]) == 2
    assert "config differs from the interrupted run's (training.lr" in capsys.readouterr().err
    assert main(run + ["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    # the noise generator's state belongs to its device: a state from another kind of device is refused
    state_path = tmp_path / "resumed" / "train_state.pt"
    state = torch.load(state_path, weights_only=True)
    torch.save({**state, "devices": {**state["devices"], "noise": "cuda"}}, state_path)
    assert main(run + ["--out", str(tmp_path / "resumed"), "--epochs", "4", "--resume"]) == 2
    assert "trained on cuda, not cpu" in capsys.readouterr().err
    # a train_state.pt of the format before the one training state is refused, naming the file
    torch.save({"config": {}, "epoch": 2, "device_type": "cpu", "model": state["model"]}, state_path)
    assert main(run + ["--out", str(tmp_path / "resumed"), "--epochs", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{state_path}: a training state of an older dosmatgen" in err
