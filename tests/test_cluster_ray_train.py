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
from cluster.ray_train import CHECKPOINT_FILE, run_distributed_training  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    os.environ["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _rank_logs(d):
    return {r: [json.loads(x) for x in (d / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}


def test_gloo_ddp_two_workers_then_resume(tmp_path):
    from dosmatgen.training.checkpoint import load_checkpoint
    from dosmatgen.training.config import RunConfig

    cfg = tiny_run_config()
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
                                      resume_from=resume_dir, **common)
    logs2 = _rank_logs(tmp_path / "m2")
    assert [m["epoch"] for m in logs2[0]] == [2]  # resumed: epoch 1 not repeated
    assert logs2[0][-1]["step"] == 4
    assert logs2[0][-1]["param_digest"] == pytest.approx(logs2[1][-1]["param_digest"], abs=1e-9)
    assert second.metrics["epoch"] == 2
