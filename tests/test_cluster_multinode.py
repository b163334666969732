"""Two-node run on one machine (issue 17, "done when"): two Ray nodes (``ray.cluster_utils.Cluster``, a per-run
auth token) and two Dask workers joined through the scheduler file over TLS. The screen samples on Ray, a node is
killed mid-sampling (the driver dies), ``--resume`` finishes on the surviving node and relaxes on Dask while one
Dask worker is killed, and the run ends with exactly N unique candidates.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_multinode.py
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from screen_helpers import TESTS_DIR, write_config

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from dosmatgen_cluster import ray_auth, ray_sampling, tls  # noqa: E402
from dask_process_helpers import DaskProcesses  # noqa: E402

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
N = 24  # candidates: sizes 2 and 3, 12 each, shards of 3 -> 8 shards


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-nodes")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    os.environ["PYTHONPATH"] = str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ.update(ray_auth.token_env(ray_auth.make_token(folder / "ray_auth_token")))
    # this pytest process imported Ray before the variables were set (a driver started by slurm/screen.sh has them
    # from the start): make Ray re-read its configuration from the environment
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()  # an earlier module's cluster may have cached another token
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, worker, folder
    finally:
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def _wait_for_files(folder: Path, n: int, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and len(list(folder.glob("*.json"))) < n:
        time.sleep(0.05)


def test_a_driver_without_the_run_token_is_refused(two_nodes, tmp_path):
    cluster, _, folder = two_nodes
    probe = "import ray; ray.init(address=%r); print(len(ray.nodes()))" % cluster.address
    base = {**os.environ, "HOME": str(tmp_path)}  # no ~/.ray/auth_token to fall back on
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=base)
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "2", ok.stderr[-2000:]
    wrong = {**base, **ray_auth.token_env(ray_auth.make_token(tmp_path / "other-token"))}
    bad = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=wrong)
    assert bad.returncode != 0 and "auth" in bad.stderr.lower()


def test_sample_kill_a_node_resume_and_relax_on_dask_over_tls(two_nodes, tmp_path):
    from dosmatgen.screen.driver import run_screen
    from dosmatgen.runstore import RunStore
    from dosmatgen.screen.config import load_screen_config
    from dosmatgen.screen.targets import run_layout, target_plans

    cluster, worker_node, _ = two_nodes
    assert int(ray.cluster_resources().get("CPU", 0)) == 2 and len([n for n in ray.nodes() if n["Alive"]]) == 2
    creds = tls.make_credentials(tmp_path / "job" / "tls")
    dask = DaskProcesses(tmp_path / "job", creds.folder)
    try:
        assert dask.start_scheduler().startswith("tls://")
        dask.start_worker("node0")
        node1 = dask.start_worker("node1")
        run = tmp_path / "run"
        cfg = write_config(
            tmp_path / "screen.yaml", run,
            targets=[{"id": "a", "unconditioned": True, "num_atoms": [2, 3], "candidates_per_num_atoms": N // 2}],
            sample={"backend": "ray", "loader": "screen_helpers:load_slow_sampler", "options": {"delay_s": 0.5},
                    "ray": {"expected_nodes": 1, "timeout_s": 120, "use_gpu": False}},
            relax={"backend": "dask", "dask": {"cluster": "scheduler_file", "scheduler_file": str(dask.scheduler_file),
                                               "min_workers": 2, "wait_timeout_s": 120, "timeout_s": 600}},
        )
        # 1) the driver samples on both nodes; the second node dies mid-run and takes the driver down with it
        c = load_screen_config(cfg)
        store = RunStore.create(c.run_dir, run_layout(c), target_plans(c))
        done = run / "manifest" / "sample" / "a"

        def kill_ray_node():
            _wait_for_files(done, 2)
            cluster.remove_node(worker_node, allow_graceful=False)

        killer = threading.Thread(target=kill_ray_node)
        killer.start()
        with pytest.raises(RuntimeError, match="sampling actors died"):
            ray_sampling.run_sampling(store.root, [("a", s) for s in range(8)], "screen_helpers:load_slow_sampler",
                                      {"delay_s": 0.5}, num_actors=2, use_gpu=False, timeout_s=120,
                                      max_actor_restarts=0, expected_nodes=2, progress=False)
        killer.join(60)
        left = store.target("a").pending("sample")
        assert 0 < len(left) < 8  # some shards were done before the node died, some were not

        # 2) --resume: sampling finishes on the surviving node, relaxation runs on the two TLS Dask workers,
        #    and one Dask worker is killed mid-relaxation
        relaxed = run / "manifest" / "relax" / "a"

        def kill_dask_worker():
            _wait_for_files(relaxed, 1, timeout_s=300)
            dask.kill(node1, signal.SIGKILL)

        killer = threading.Thread(target=kill_dask_worker)
        killer.start()
        out = run_screen(cfg, resume=True, progress=False)
        killer.join(60)
        assert node1.poll() is not None  # the worker was killed during the run
    finally:
        dask.stop()
    t = RunStore.open(run, mode="r").target("a")
    assert t.pending("sample") == [] and t.pending("relax") == []
    crystals = t.read_crystals("sample")
    assert len(crystals) == N and all(x is not None for x in crystals)
    assert len({x.frac_coords.tobytes() for x in crystals}) == N  # exactly N unique candidates
    seeds = t.column("sample/seed")
    assert all((seeds[3 * s: 3 * s + 3] == t.shard_seed(s)).all() for s in range(8))
    summary = json.loads((run / "summary" / "summary.json").read_text())
    counts = summary["counts"]["a"]
    assert (counts["planned"], counts["sampled"]) == (N, N) and summary["failed_shards"] == []
    assert out["stages"]["relax"]["shards"] == 8 and counts["dft_done"] == 2
