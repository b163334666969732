"""Forward DOS surrogate: training reduces the loss, shapes, checkpoint round trip, baselines, bad input."""

import json

import numpy as np
import pytest
import torch

from dosmatgen.crystal import Crystal
from dosmatgen.errors import CheckpointError, StoreError
from dosmatgen.surrogate.baselines import CompositionMeanBaseline, MeanDOSBaseline, PerElementMeanBaseline
from dosmatgen.surrogate.checkpoint import load_checkpoint, save_checkpoint
from dosmatgen.surrogate.config import SurrogateConfig, SurrogateTrainConfig
from dosmatgen.surrogate.evaluate import evaluate_surrogate
from dosmatgen.surrogate.model import DOSSurrogate
from dosmatgen.surrogate.predict import SurrogatePredictor
from dosmatgen.surrogate.train import train_surrogate
from surrogate_fixture_helpers import synthetic_crystals, write_synthetic_dos_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_dos_store(tmp_path_factory.mktemp("surrogate") / "syn.zarr")


@pytest.fixture(scope="module")
def trained(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("surrogate_run")
    cfg = SurrogateTrainConfig(preset="tiny", epochs=25, batch_size=8, lr=3e-3, seed=0, num_threads=1)
    return out, train_surrogate(store, out, cfg)


def test_training_reduces_the_loss_and_writes_a_log(trained):
    out, result = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == result.epochs_run == 25
    assert rows[-1]["train_loss"] < 0.6 * rows[0]["train_loss"]
    assert result.best_val_mae == min(r["val_loss"] for r in rows)
    assert result.checkpoint.is_file()


def test_predict_shapes_and_units(trained):
    _, result = trained
    pred = SurrogatePredictor.from_checkpoint(result.checkpoint)
    crystals = synthetic_crystals(5) + [Crystal([14] * 3, np.random.default_rng(0).random((3, 3)), np.eye(3) * 5)]
    scaled = pred.predict_scaled(crystals)
    unscaled = pred.predict(crystals)
    assert [p.shape for p in unscaled] == [(2, 400)] * 5 + [(3, 400)]
    np.testing.assert_allclose(pred.scaler.transform(unscaled[0]), scaled[0], atol=1e-8)
    rows = pred.predict_sites([crystals[0], None, crystals[5]], [1, 0, 7])
    assert rows.shape == (3, 400)
    np.testing.assert_allclose(rows[0], scaled[0][1], atol=1e-5)  # float32, different batch composition
    assert np.isnan(rows[1]).all() and np.isnan(rows[2]).all()  # missing structure, site index out of range


def test_checkpoint_round_trip(trained, tmp_path):
    _, result = trained
    model, scaler, grid, info = load_checkpoint(result.checkpoint)
    path = save_checkpoint(tmp_path / "copy.pt", model, scaler, grid, info)
    torch.load(path, weights_only=True)  # plain tensors and Python values only
    model2, scaler2, grid2, info2 = load_checkpoint(path)
    crystals = synthetic_crystals(3)
    a = SurrogatePredictor(model, scaler, grid).predict(crystals)
    b = SurrogatePredictor(model2, scaler2, grid2).predict(crystals)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert grid2 == grid and info2["train_split"] == "train" and info2["epoch"] >= 1


def test_trained_surrogate_beats_baselines_on_synthetic_data(trained, store):
    _, result = trained
    ev = evaluate_surrogate(result.checkpoint, store, split="test")
    assert ev.n_structures == 7 and ev.n_rows == 14
    assert ev.mae_scaled < ev.baseline_mean_mae_scaled
    d = ev.to_dict()
    assert d["split"] == "test" and np.isfinite(d["improvement_over_mean"])


def test_total_dos_variant_shapes(store, tmp_path):
    cfg = SurrogateTrainConfig(preset="tiny", model={"target": "total"}, epochs=2, batch_size=8, num_threads=1)
    result = train_surrogate(store, tmp_path, cfg)
    pred = SurrogatePredictor.from_checkpoint(result.checkpoint)
    out = pred.predict(synthetic_crystals(4))
    assert [p.shape for p in out] == [(256,)] * 4
    ev = evaluate_surrogate(pred, store)
    assert ev.target == "total" and ev.n_rows == ev.n_structures == 7


def test_model_is_rotation_and_permutation_invariant():
    torch.manual_seed(0)
    model = DOSSurrogate(SurrogateConfig.tiny()).eval()
    z = torch.tensor([11, 17, 17])
    x = torch.rand(3, 3)
    lat = (torch.eye(3) * 4 + 0.3 * torch.rand(3, 3)).unsqueeze(0)
    b = torch.zeros(3, dtype=torch.long)
    y = model(z, x, lat, b)
    q, _ = torch.linalg.qr(torch.randn(3, 3))
    torch.testing.assert_close(model(z, x, lat @ q.T, b), y, atol=1e-5, rtol=1e-5)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(model(z[perm], x[perm], lat, b), y[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(z, (x + 0.37) % 1.0, lat, b), y, atol=1e-4, rtol=1e-4)


def test_baselines_on_a_hand_made_set():
    rows = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    z = np.array([8, 8, 11])
    np.testing.assert_allclose(MeanDOSBaseline().fit(rows).predict(2), [[3.0, 5.0], [3.0, 5.0]])
    el = PerElementMeanBaseline().fit(z, rows)
    np.testing.assert_allclose(el.predict([11, 8, 26]), [[5.0, 9.0], [2.0, 3.0], [3.0, 5.0]])  # Fe unseen: global mean
    assert el.elements == [8, 11]
    comp = CompositionMeanBaseline().fit([np.array([8, 8]), np.array([11, 8])], np.array([[2.0, 0.0], [4.0, 2.0]]))
    # mu_O = (1*[2,0] + 0.5*[4,2]) / 1.5, mu_Na = [4,2]
    mu_o = (np.array([2.0, 0.0]) + 0.5 * np.array([4.0, 2.0])) / 1.5
    np.testing.assert_allclose(comp.predict([np.array([8]), np.array([11, 8])]), [mu_o, 0.5 * mu_o + 0.5 * np.array([4.0, 2.0])])
    with pytest.raises(ValueError):
        PerElementMeanBaseline().fit(z[:2], rows)


def test_missing_or_foreign_checkpoint_and_store_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no surrogate checkpoint"):
        SurrogatePredictor.from_checkpoint(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a dosmatgen surrogate"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(StoreError):
        train_surrogate(tmp_path / "no_store.zarr", tmp_path / "out", SurrogateTrainConfig(preset="tiny", epochs=1))


def test_shipped_cpu_config_parses():
    from pathlib import Path

    import yaml

    path = Path(__file__).resolve().parent.parent / "configs" / "surrogate" / "small-cpu.yaml"
    cfg = SurrogateTrainConfig.from_dict(yaml.safe_load(path.read_text()))
    assert cfg.model_config() == SurrogateConfig.small(target="site")
    with pytest.raises(ValueError, match="unknown"):
        SurrogateTrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ValueError, match="preset"):
        SurrogateTrainConfig(preset="huge").model_config()


def test_resume_continues_an_interrupted_run_exactly(store, tmp_path, capsys):
    """3 epochs, or 2 epochs then --resume to 3, give the same weights, log and best epoch; a changed config or a
    missing state is refused with the file named."""
    from dosmatgen.cli.main import main
    from dosmatgen.surrogate.train import TRAIN_STATE

    cfg = SurrogateTrainConfig(preset="tiny", epochs=3, batch_size=8, lr=3e-3, seed=0, num_threads=1)
    straight = train_surrogate(store, tmp_path / "straight", cfg)
    train_surrogate(store, tmp_path / "resumed", SurrogateTrainConfig(**{**cfg.to_dict(), "epochs": 2}))
    assert (tmp_path / "resumed" / TRAIN_STATE).is_file()
    resumed = train_surrogate(store, tmp_path / "resumed", cfg, resume=True)
    assert resumed.epochs_run == 3 and resumed.best_epoch == straight.best_epoch
    assert resumed.best_val_mae == pytest.approx(straight.best_val_mae, abs=1e-7)
    a = torch.load(tmp_path / "straight" / TRAIN_STATE, weights_only=False)["model"]  # the weights after epoch 3
    b = torch.load(tmp_path / "resumed" / TRAIN_STATE, weights_only=False)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    log_a = [json.loads(l) for l in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    log_b = [json.loads(l) for l in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_b] == [1, 2, 3]
    assert [r["train_loss"] for r in log_b] == pytest.approx([r["train_loss"] for r in log_a], abs=1e-6)

    # a log line cut short by a kill (after the state of epoch 3 was saved) is dropped on resume
    with open(tmp_path / "resumed" / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 4, "step": 1')
    again = train_surrogate(store, tmp_path / "resumed", SurrogateTrainConfig(**{**cfg.to_dict(), "epochs": 4}), resume=True)
    assert again.epochs_run == 4
    assert [json.loads(l)["epoch"] for l in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

    with pytest.raises(CheckpointError, match="training config differs.*lr"):
        train_surrogate(store, tmp_path / "resumed", SurrogateTrainConfig(**{**cfg.to_dict(), "lr": 1e-2}), resume=True)
    with pytest.raises(CheckpointError, match="cannot be combined"):
        train_surrogate(store, tmp_path / "resumed", cfg, resume=True, init_from=straight.checkpoint)
    rc = main(["surrogate", "train", "--data", str(store), "--out", str(tmp_path / "empty"), "--preset", "tiny", "--resume"])
    err = capsys.readouterr().err
    assert rc != 0 and "nothing to resume" in err and str(tmp_path / "empty") in err
