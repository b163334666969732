"""Ray Train DDP (gloo, 2 CPU workers) around the library's train_step: sharded data, replicas kept in sync by
gradient averaging, checkpoints in the library format, resume.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_ray_train.py
"""

from __future__ import annotations

import json
import os

import pytest
from screen_helpers import TESTS_DIR, tiny_run_config

ray = pytest.importorskip("ray")
from dosmatgen_cluster.ray_train import CHECKPOINT_FILE, run_distributed_training  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    os.environ["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


class _CrashOnce(list):
    """Crystals whose first read after Ray Train registered a checkpoint kills the worker process (once)."""

    marker: str = ""
    run_dir: str = ""

    def __getitem__(self, i):
        import glob
        import time

        if not os.path.exists(self.marker) and glob.glob(os.path.join(self.run_dir, "checkpoint_*", "train_state.pt")):
            # the checkpoint counts once Ray's controller has registered it (its snapshot names it), not when written
            snapshot = os.path.join(self.run_dir, "checkpoint_manager_snapshot.json")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not os.path.exists(self.marker):
                if os.path.exists(snapshot) and "checkpoint_dir_name" in open(snapshot).read():
                    open(self.marker, "w").close()
                    os._exit(1)
                time.sleep(0.2)
        return list.__getitem__(self, i)


def crash_once_training_set(n: int, marker: str, run_dir: str):
    """``synthetic_training_set`` that loses its worker once, in the epoch after the first checkpoint."""
    from screen_helpers import synthetic_training_set

    items = _CrashOnce(synthetic_training_set(n=n)[0])
    items.marker, items.run_dir = marker, run_dir
    return items, None


def _rank_logs(d):
    return {r: [json.loads(x) for x in (d / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}


def test_gloo_ddp_two_workers_then_resume(tmp_path):
    """2 gloo workers: sharded data, replicas in sync, a library checkpoint; then 1 epoch + resume to 2 equals an
    uninterrupted 2-epoch run to the bit (weights, EMA, optimizer, every rank's generator)."""
    import torch

    from dosmatgen.training.checkpoint import load_checkpoint
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.train_state import read_train_state

    cfg = tiny_run_config()
    cfg["training"]["ema_decay"] = 0.9
    common = dict(num_workers=2, use_gpu=False, storage_path=str(tmp_path / "storage"),
                  dataset_loader="screen_helpers:synthetic_training_set", dataset_options={"n": 16})
    result = run_distributed_training(cfg, epochs=1, metrics_dir=str(tmp_path / "m1"), name="first", **common)
    logs = _rank_logs(tmp_path / "m1")
    r0, r1 = logs[0][-1], logs[1][-1]
    # each worker trained on its own half of the data (DistributedSampler) ...
    assert r0["local_structures"] == r1["local_structures"] == 8 and r0["structures"] == 16
    # ... and DDP averaged the gradients, so both replicas hold the same parameters
    assert r0["param_digest"] == pytest.approx(r1["param_digest"], rel=0, abs=1e-9)
    assert r0["train_loss"] == r1["train_loss"]  # the all-reduced mean over both shards
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as d:
        run_cfg = RunConfig.from_dict(cfg)
        ckpt = load_checkpoint(os.path.join(d, CHECKPOINT_FILE), run_cfg.model, run_cfg.diffusion)
        assert ckpt.epoch == 1 and ckpt.global_step == 2  # global batch 8 = 4 per worker: 2 steps over 8 local structures
        resume_dir = str(tmp_path / "resume-from")
        import shutil

        shutil.copytree(d, resume_dir)
    second = run_distributed_training(cfg, epochs=2, metrics_dir=str(tmp_path / "m2"), name="second",
                                      resume_from=resume_dir, out_dir=str(tmp_path / "resumed"), **common)
    logs2 = _rank_logs(tmp_path / "m2")
    assert [m["epoch"] for m in logs2[0]] == [2]  # resumed: epoch 1 not repeated
    assert logs2[0][-1]["step"] == 4
    assert logs2[0][-1]["param_digest"] == pytest.approx(logs2[1][-1]["param_digest"], abs=1e-9)
    assert second.metrics["epoch"] == 2

    run_distributed_training(cfg, epochs=2, metrics_dir=str(tmp_path / "m3"), name="straight",
                             out_dir=str(tmp_path / "straight"), **common)
    a = load_checkpoint(tmp_path / "straight" / CHECKPOINT_FILE)
    b = load_checkpoint(tmp_path / "resumed" / CHECKPOINT_FILE)
    for got, want in ((b.model_state, a.model_state), (b.ema_state, a.ema_state)):
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    for k, v in a.optimizer_state["state"].items():
        assert all(torch.equal(v[n], b.optimizer_state["state"][k][n]) for n in v)
    sa, sb = read_train_state(tmp_path / "straight", "denoiser"), read_train_state(tmp_path / "resumed", "denoiser")
    assert len(sa.rng) == len(sb.rng) == 2
    assert all(torch.equal(x["noise"], y["noise"]) for x, y in zip(sa.rng, sb.rng))
    assert not torch.equal(sa.rng[0]["noise"], sa.rng[1]["noise"])  # each rank draws its own noise
    assert _rank_logs(tmp_path / "m3")[0][-1]["param_digest"] == logs2[0][-1]["param_digest"]

    # a worker lost in epoch 2: Ray Train restarts the workers (max_failures), they continue from the checkpoint of
    # epoch 1 and end where the uninterrupted run ended
    marker = tmp_path / "crashed"
    lossy = {**common, "dataset_loader": "test_cluster_ray_train:crash_once_training_set",
             "dataset_options": {"n": 16, "marker": str(marker), "run_dir": str(tmp_path / "storage" / "lossy")}}
    restarted = run_distributed_training(cfg, epochs=2, metrics_dir=str(tmp_path / "m4"), name="lossy",
                                         out_dir=str(tmp_path / "restarted"), max_failures=1, **lossy)
    assert marker.exists() and restarted.error is None
    assert [m["epoch"] for m in _rank_logs(tmp_path / "m4")[0]] == [1, 2]  # epoch 1 not trained again
    c = load_checkpoint(tmp_path / "restarted" / CHECKPOINT_FILE)
    assert c.epoch == 2 and all(torch.equal(c.model_state[k], a.model_state[k]) for k in a.model_state)


def test_ddp_two_workers_matches_the_single_process_trainer(tmp_path):
    """Gloo DDP, 2 workers x 4 crystals, against the library's single-process ``train`` with batches of 8, on the
    same 16 crystals of 2 and 3 atoms: with per-structure randomness both draw the same t, noise and dropout for
    every crystal, both see the same global batches (DistributedSampler's order), DDP averages the two shards'
    gradients with the per-atom terms weighted by each shard's share of the atoms, so the losses and the trained
    parameters agree to round-off."""
    from screen_helpers import synthetic_training_set

    from dosmatgen_cluster.ray_train import param_digest
    from dosmatgen.training.checkpoint import load_checkpoint
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.trainer import build_model, read_metrics, train

    cfg = tiny_run_config()
    cfg["training"]["per_structure_noise"] = True
    options = {"n": 16}  # 2- and 3-atom crystals: the two shards of a global batch hold different atom counts
    run_distributed_training(cfg, epochs=2, num_workers=2, use_gpu=False, storage_path=str(tmp_path / "storage"),
                             dataset_loader="screen_helpers:synthetic_training_set", dataset_options=options,
                             metrics_dir=str(tmp_path / "m"), name="ddp")
    logs = _rank_logs(tmp_path / "m")
    assert [m["epoch"] for m in logs[0]] == [1, 2]
    assert [m["local_structures"] for m in logs[0]] == [8, 8] == [m["local_structures"] for m in logs[1]]
    ddp_losses = [m["train_loss"] for m in logs[0]]
    ddp_digest = logs[0][-1]["param_digest"]

    def single(per_structure_noise: bool, out):
        run = RunConfig.from_dict({**cfg, "training": {**cfg["training"], "per_structure_noise": per_structure_noise}})
        dataset, _ = synthetic_training_set(**options)
        result = train(run, dataset, None, out, epochs=2, progress=False)
        model = build_model(run)
        model.load_state_dict(load_checkpoint(result.last_checkpoint).model_state)
        return [m["train_loss"] for m in read_metrics(out)], param_digest(model)

    ref_losses, ref_digest = single(True, tmp_path / "single")
    assert ddp_losses == pytest.approx(ref_losses, rel=1e-5)
    assert ddp_digest == pytest.approx(ref_digest, rel=1e-5)
    # the comparison can tell runs apart: the same single process with batch-wide noise ends elsewhere
    other_losses, other_digest = single(False, tmp_path / "batchwide")
    assert other_losses != pytest.approx(ref_losses, rel=1e-5)
    assert other_digest != pytest.approx(ref_digest, rel=1e-5)


def test_cli_train_distributed_then_resume(tmp_path, capsys):
    """``dosmatgen train --distributed --workers 2`` on the bundled store: a library checkpoint in OUT that the
    sampler's loader reads, then ``--resume`` continues at the next epoch."""
    import torch
    import yaml

    from dosmatgen.cli.main import main
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.training.checkpoint import load_checkpoint
    from dosmatgen.training.config import RunConfig

    cfg = tiny_run_config()
    cfg["training"].update(max_batches_per_epoch=2, ema_decay=0.9)  # EMA as in configs/model/small.yaml
    cfg["data"] = {"store": str(bundled_dataset_path())}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    args = ["train", "--config", str(config), "--out", str(out), "--distributed", "--workers", "2", "--no-progress"]
    assert main(args + ["--epochs", "1"]) == 0
    assert "distributed training on 2 CPU worker(s)" in capsys.readouterr().out
    run_cfg = RunConfig.from_dict(cfg)
    ckpt = load_checkpoint(out / "last.pt", run_cfg.model, run_cfg.diffusion)
    assert ckpt.epoch == 1 and ckpt.global_step == 2 and ckpt.scalers  # the store's scalers travel with the model
    assert ckpt.ema_state is not None and ckpt.scheduler_state is not None
    assert ckpt.training["data"]["train_split"] == "train" and ckpt.training["data"]["val_split"] is None
    ema = ckpt.build_model(use_ema=True).state_dict()
    raw = ckpt.build_model(use_ema=False).state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # the EMA weights are their own
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["store"] == str(bundled_dataset_path())
    # a second run into the same folder without --resume is refused, with --resume it continues
    assert main(args + ["--epochs", "1"]) == 2
    capsys.readouterr()
    assert main(args + ["--epochs", "1", "--resume"]) == 2  # nothing left to do: said up front
    assert "already at epoch 1" in capsys.readouterr().err
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    ckpt = load_checkpoint(out / "last.pt", run_cfg.model, run_cfg.diffusion)
    assert ckpt.epoch == 2 and ckpt.global_step == 4
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # the global batch must split evenly over the workers
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o3"), "--distributed", "--workers", "3",
                 "--epochs", "1"]) == 2
    assert "multiple of the 3 workers" in capsys.readouterr().err
    # warm start: a new distributed run from the first run's EMA weights, recorded in its checkpoint; every rank
    # starts from them (lr 1e-30 keeps them in place for one epoch)
    cfg["training"]["lr"], cfg["training"]["min_lr"] = 1e-30, 1e-31
    config.write_text(yaml.safe_dump(cfg))
    warm = tmp_path / "warm"
    warm_args = ["train", "--config", str(config), "--out", str(warm), "--distributed", "--workers", "2",
                 "--no-progress", "--epochs", "1", "--init-from", str(out / "last.pt")]
    assert main(warm_args) == 0
    got = load_checkpoint(warm / "last.pt", run_cfg.model, run_cfg.diffusion)
    start = ckpt.inference_state(use_ema=True)
    assert got.epoch == 1 and got.training["init_from"] == str((out / "last.pt").absolute())
    for k in start:
        torch.testing.assert_close(got.model_state[k], start[k], rtol=0, atol=1e-20)
    capsys.readouterr()
    missing = ["train", "--config", str(config), "--out", str(tmp_path / "warm2"), "--distributed", "--workers", "2",
               "--no-progress", "--epochs", "1", "--init-from", str(tmp_path / "nope.pt")]
    assert main(missing) == 2
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err
