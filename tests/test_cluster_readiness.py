"""Start-up readiness: the driver waits for the expected Ray nodes/GPUs (a node that joins late still gets its
actors), and a node that never joins gives a clear error naming the expected and found counts.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_readiness.py
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from screen_helpers import TESTS_DIR, small_store

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from dosmatgen_cluster import ray_sampling  # noqa: E402
from dosmatgen_cluster.readiness import RayCapacity, expected_count, wait_for_ray  # noqa: E402

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def one_node_cluster():
    os.environ["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_a_late_second_node_gets_its_gpu_actor(one_node_cluster, tmp_path, monkeypatch):
    """A second node joins 4 s after the driver started (``ray start --address`` in a delayed process, as a slow
    srun step would): the driver waits for it and sizes its pool on both nodes' GPUs."""
    sizes = []
    real = ray_sampling.make_actors
    monkeypatch.setattr(ray_sampling, "make_actors", lambda loader, options, n, *a, **k: sizes.append(n) or real(loader, options, n, *a, **k))
    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable))
    late = subprocess.Popen(["bash", "-c", f"sleep 4 && exec {ray_cli} start --address={one_node_cluster.address} "
                             "--num-cpus=1 --num-gpus=1 --block"], stdout=open(tmp_path / "late-node.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    store = small_store(tmp_path / "run", n=8, shard_size=2)
    units = [("t0", s) for s in range(4)]
    try:
        rep = ray_sampling.run_sampling(store.root, units, "screen_helpers:load_slow_sampler", {"delay_s": 0},
                                        expected_nodes=2, expected_gpus="2", ready_timeout_s=120, timeout_s=120,
                                        progress=False)
        hosts_gpus = ray.cluster_resources().get("GPU")
    finally:
        os.killpg(late.pid, signal.SIGTERM)
        late.wait(60)
    assert hosts_gpus == 2
    assert sizes == [2]  # one actor per GPU of the WHOLE allocation, not of the nodes present at start
    assert rep.candidates == 8


def test_a_node_that_never_joins_is_a_clear_error(one_node_cluster):
    with pytest.raises(TimeoutError, match=r"expected 5 node\(s\), 8 GPU\(s\), found \d node\(s\), \d GPU"):
        wait_for_ray(5, 8, timeout_s=2, poll_s=0.5)


def test_wait_polls_until_ready_and_checks_config_values():
    seen = iter([RayCapacity(1, 4, 128), RayCapacity(1, 4, 128), RayCapacity(2, 8, 256)])
    assert wait_for_ray(2, 8, timeout_s=30, poll_s=0.01, probe=lambda: next(seen)) == RayCapacity(2, 8, 256)
    assert expected_count(None, "x") is None and expected_count("4", "x") == 4
    with pytest.raises(ValueError, match=r"expected_nodes must be a positive integer, got '\$\{SLURM_JOB_NUM_NODES\}'"):
        expected_count("${SLURM_JOB_NUM_NODES}", "expected_nodes")
