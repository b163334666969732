"""Ray Train worker hooks and trainer settings without starting Ray: collectives on the process group's device
(issue 17: NCCL groups cannot reduce CPU tensors) and FailureConfig(max_failures) reaching the TorchTrainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")
import dosmatgen_cluster.ray_train as ray_train  # noqa: E402
from dosmatgen_cluster.ray_train import RayTrainHooks  # noqa: E402


@pytest.fixture
def fake_group(monkeypatch):
    """A process group of a given backend whose all_reduce records the device and dtype of every tensor and
    doubles it (two ranks holding the same numbers)."""
    seen: list[tuple[torch.device, torch.dtype]] = []

    def use(backend: str):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: backend)

        def all_reduce(tensor, op=None, group=None, async_op=False):
            seen.append((tensor.device, tensor.dtype))
            if tensor.device.type != "meta":
                tensor.mul_(2)

        monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
        return seen

    return use


def test_under_nccl_tensors_are_reduced_on_the_workers_gpu(fake_group):
    """The NCCL group takes only tensors on the worker's GPU. This machine has none, so the "meta" device stands in
    for it: what matters is that the CPU tensor the engine hands over is moved to the worker's device."""
    seen = fake_group("nccl")
    hooks = RayTrainHooks(rank=1, world_size=2, device=torch.device("meta"))
    assert hooks.collective_device() == torch.device("meta")
    out = hooks.all_reduce(torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert seen == [(torch.device("meta"), torch.float64)]
    assert out.device.type == "meta"  # the caller moves the sum where it needs it


def test_under_gloo_tensors_are_reduced_on_cpu(fake_group):
    seen = fake_group("gloo")
    hooks = RayTrainHooks(rank=0, world_size=2, device=torch.device("cpu"))
    out = hooks.all_reduce(torch.tensor([3.0, 4.0], dtype=torch.float64))
    assert seen == [(torch.device("cpu"), torch.float64)]
    assert out.tolist() == [6.0, 8.0]
    # one worker: no collective at all
    assert RayTrainHooks(0, 1, torch.device("cpu")).all_reduce(torch.tensor([1.0])).tolist() == [1.0]
    assert len(seen) == 1


class _FakeTrainer:
    made: list[dict] = []

    def __init__(self, loop, **kwargs):
        _FakeTrainer.made.append(kwargs)

    def fit(self):
        class Result:
            error, metrics, path = None, {"epoch": 1}, "fake"

        return Result()


@pytest.fixture
def fake_trainer(monkeypatch):
    import ray.train.torch

    _FakeTrainer.made = []
    monkeypatch.setattr(ray.train.torch, "TorchTrainer", _FakeTrainer)
    import dosmatgen_cluster.ray_sampling

    monkeypatch.setattr(dosmatgen_cluster.ray_sampling, "connect", lambda address=None: None)
    return _FakeTrainer.made


def test_max_failures_reaches_the_trainer(tmp_path, fake_trainer):
    """A lost worker restarts the run from its last checkpoint up to max_failures times: 2 by default, settable from
    the library call and from `dosmatgen train --distributed --max-failures`."""
    import yaml

    from dosmatgen.cli.main import main
    from dosmatgen.data.bundled import bundled_dataset_path
    from screen_helpers import tiny_run_config

    ray_train.run_distributed_training(tiny_run_config(), num_workers=2, use_gpu=False,
                                       storage_path=str(tmp_path / "s"), max_failures=5)
    ray_train.train_to_folder(tiny_run_config(), str(bundled_dataset_path()), tmp_path / "a", num_workers=2)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_run_config()))
    assert main(["train", "--config", str(config), "--data", str(bundled_dataset_path()), "--out", str(tmp_path / "b"),
                 "--distributed", "--workers", "2", "--max-failures", "7", "--no-progress"]) == 0
    got = [made["run_config"].failure_config.max_failures for made in fake_trainer]
    assert got == [5, 2, 7]


def test_resume_of_a_folder_without_a_training_state_is_refused_before_ray_starts(tmp_path, fake_trainer):
    from dosmatgen.errors import CheckpointError
    from screen_helpers import tiny_run_config

    out = tmp_path / "old"
    out.mkdir()
    (out / "last.pt").write_bytes(b"")  # a folder of the earlier format: last.pt + ranks.json
    (out / "ranks.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"old/train_state\.pt not found"):
        ray_train.train_to_folder(tiny_run_config(), "store", out, num_workers=2, resume=True)
    assert fake_trainer == []
    assert not Path(out / "config.yaml").exists()
