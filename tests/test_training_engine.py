"""The training engine shared by the denoiser, regressor, surrogate and Ray Train workers: collectives only through
the hooks, one training-state format with clear refusals, time budgets."""

from __future__ import annotations

import json

import pytest
import torch

from dosmatgen.errors import CheckpointError
from dosmatgen.training.config import RunConfig
from dosmatgen.training.denoiser_task import DenoiserTask
from dosmatgen.training.engine import EngineSettings, run_training
from dosmatgen.training.train_state import TRAIN_STATE, read_train_state
from dosmatgen.training.trainer import build_model, train
from screen_helpers import synthetic_training_set, tiny_run_config


class TwoIdenticalRanks:
    """Hooks of rank 0 in a world of 2 whose other rank holds the same numbers: sums double. Records every
    collective with the device of its tensor."""

    rank, world_size = 0, 2

    def __init__(self):
        self.device = torch.device("cpu")
        self.calls: list[tuple[str, str]] = []

    def all_reduce(self, tensor):
        self.calls.append(("all_reduce", tensor.device.type))
        return tensor * 2

    def all_gather_object(self, obj):
        self.calls.append(("all_gather_object", "object"))
        return [obj, obj]

    def barrier(self):
        self.calls.append(("barrier", "-"))

    def prepare_model(self, model):
        return model


def test_every_collective_of_a_data_parallel_epoch_goes_through_the_hooks(tmp_path, monkeypatch):
    """The library never calls torch.distributed itself: a launcher's hooks decide where tensors are reduced (the
    NCCL fix of cluster/ray_train.py lives there). Per step: one atom-count reduction; per epoch: one reduction of
    the loss sums and one gather of the generator states, which the state keeps per rank."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the library called torch.distributed directly")

    for name in ("all_reduce", "all_gather_object", "all_gather", "broadcast", "barrier"):
        monkeypatch.setattr(torch.distributed, name, forbidden)
    cfg = RunConfig.from_dict(tiny_run_config())
    data, _ = synthetic_training_set(n=8)
    hooks = TwoIdenticalRanks()
    task = DenoiserTask(cfg, data, None, hooks=hooks, model_factory=lambda: build_model(cfg), scalers={},
                        num_atoms_counts=None, training_record={})
    result = run_training(task, EngineSettings.from_train_config(cfg.training, 1), tmp_path, hooks=hooks)
    steps = 8 // 2 // (cfg.training.batch_size // 2)  # this rank's half of 8 crystals in batches of 4
    assert result.global_step == steps
    assert hooks.calls == [("all_reduce", "cpu")] * steps + [("all_reduce", "cpu"), ("all_gather_object", "object")]
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert row["epoch"] == 1 and row["train_loss"] > 0
    state = read_train_state(tmp_path, "denoiser")
    assert len(state.rng) == 2 and state.devices == {"noise": "cpu"}


def test_the_denoiser_refuses_to_resume_without_a_training_state(tmp_path):
    cfg = RunConfig.from_dict(tiny_run_config())
    data, _ = synthetic_training_set(n=8)
    train(cfg, data, None, tmp_path / "run", progress=False, epochs=1)
    (tmp_path / "run" / TRAIN_STATE).unlink()  # a run folder of a dosmatgen that kept its state in last.pt
    with pytest.raises(CheckpointError, match=r"train_state\.pt not found: .*last\.pt.*--init-from"):
        train(cfg, data, None, tmp_path / "run", progress=False, resume=True, epochs=2)
    # the state of another kind of model is refused, naming the file
    train(cfg, data, None, tmp_path / "other", progress=False, epochs=1)
    payload = torch.load(tmp_path / "other" / TRAIN_STATE, weights_only=True)
    torch.save({**payload, "kind": "surrogate"}, tmp_path / "run" / TRAIN_STATE)
    with pytest.raises(CheckpointError, match=r"run/train_state\.pt: the training state of a surrogate run"):
        train(cfg, data, None, tmp_path / "run", progress=False, resume=True, epochs=2)


def test_denoiser_resume_drops_log_rows_after_the_state(tmp_path):
    """A kill between the metrics row and the state of an epoch: the resumed run rewrites that row once."""
    cfg = RunConfig.from_dict(tiny_run_config())
    data, _ = synthetic_training_set(n=8)
    train(cfg, data, None, tmp_path, progress=False, epochs=1)
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "step": 9}\n{"epoch": 3, "st')
    train(cfg, data, None, tmp_path, progress=False, resume=True, epochs=2)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["step"] == 2


def test_time_budget_stops_after_an_epoch_and_counts_across_resumes(tmp_path):
    from dosmatgen.surrogate.config import SurrogateTrainConfig
    from dosmatgen.surrogate.train import train_surrogate
    from surrogate_fixture_helpers import write_synthetic_dos_store

    store = write_synthetic_dos_store(tmp_path / "syn.zarr", n=12)
    cfg = SurrogateTrainConfig(preset="tiny", epochs=5, batch_size=8, num_threads=1, max_minutes=1e-9)
    first = train_surrogate(store, tmp_path / "run", cfg)
    assert first.epochs_run == 1 and first.stopped_early
    again = train_surrogate(store, tmp_path / "run", cfg, resume=True)  # the budget is already spent
    assert again.epochs_run == 1 and again.stopped_early
    assert read_train_state(tmp_path / "run", "surrogate").epoch == 1
    more = train_surrogate(store, tmp_path / "run", SurrogateTrainConfig(**{**cfg.to_dict(), "max_minutes": None}),
                           resume=True)
    assert more.epochs_run == 5 and not more.stopped_early
