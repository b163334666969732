"""`dosmatgen screen configs/screen/ci.yaml` end to end on local Ray actors, a Dask LocalCluster and the submitit
local executor (the DFT engine swapped for the test engine to stay fast; the real GPAW job is in
test_cluster_submitit_dft.py), then rerun: everything is skipped, nothing duplicated.

Run inside a private network namespace: tests/run_cluster_tests.sh tests/test_cluster_screen_e2e.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from screen_helpers import TESTS_DIR

pytestmark = pytest.mark.cluster
CI = Path(__file__).resolve().parents[1] / "configs" / "screen" / "ci.yaml"


def _run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "dosmatgen.cli.main", "screen", str(CI), "--no-progress",
           "--set", f"run.dir={run_dir}", "--set", "dft.loader=screen_helpers:load_test_engine", "--set", "dft.options={}",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def test_ci_config_end_to_end_then_rerun_skips_everything(tmp_path):
    run_dir = tmp_path / "run"
    first = _run(run_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((run_dir / "summary" / "summary.json").read_text())
    c = summary["counts"]["au3ni-ni"]
    assert (c["planned"], c["sampled"], c["valid"], c["selected"], c["dft_done"]) == (8, 8, 8, 1, 1)
    assert (run_dir / "summary" / "dos_overlay_au3ni-ni.png").stat().st_size > 0
    markers = sorted(p.relative_to(run_dir / "manifest").as_posix() for p in (run_dir / "manifest").rglob("*.json"))
    assert markers == ["dft/au3ni-ni/0.json", "rank/au3ni-ni/0.json", "rank/au3ni-ni/1.json", "relax/au3ni-ni/0.json",
                       "relax/au3ni-ni/1.json", "sample/au3ni-ni/0.json", "sample/au3ni-ni/1.json", "select/au3ni-ni/0.json"]
    stamps = {m: json.loads((run_dir / "manifest" / m).read_text())["time"] for m in markers}
    second = _run(run_dir, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert {m: json.loads((run_dir / "manifest" / m).read_text())["time"] for m in markers} == stamps  # nothing redone
    assert "'shards': 0" in second.stderr and "submitted" not in second.stdout
