"""scripts/test.sh: the tiers it selects and its exit codes, run against a fake venv whose ``python`` records its
arguments (``unshare`` and ``ip`` are faked too, so nothing real is started)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_venv(tmp_path: Path, pytest_rc: int) -> tuple[Path, Path]:
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    bin_dir = venv / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {
        "python": f'#!/bin/sh\nprintf "%s|" "$@" >> "{log}"\necho >> "{log}"\nexit {pytest_rc}\n',
        "unshare": '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n',
        "ip": "#!/bin/sh\nexit 0\n",
        "activate": f'export PATH="{bin_dir}:$PATH"\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return venv, log


def _run(tmp_path: Path, *args: str, pytest_rc: int = 0) -> tuple[int, list[list[str]]]:
    venv, log = _fake_venv(tmp_path, pytest_rc)
    env = {**os.environ, "DOSMATGEN_VENV": str(venv), "DOSMATGEN_TEST_SLURM": "0"}
    rc = subprocess.run(["bash", str(ROOT / "scripts" / "test.sh"), *args], env=env, capture_output=True, timeout=60).returncode
    calls = [line.rstrip("|").split("|") for line in log.read_text().splitlines()] if log.exists() else []
    return rc, calls


def _marker(call: list[str]) -> str:
    return call[call.index("-m", 3) + 1]  # after "-m pytest"


def test_default_runs_the_whole_suite(tmp_path):
    rc, calls = _run(tmp_path, "-x")
    assert rc == 0
    assert [_marker(c) for c in calls] == ["not cluster", "cluster"]
    assert all(c[:2] == ["-m", "pytest"] and "-x" in c for c in calls)


def test_fast_runs_only_the_fast_tier(tmp_path):
    rc, calls = _run(tmp_path, "--fast", "-x")
    assert rc == 0
    assert [_marker(c) for c in calls] == ["not cluster and not slow", "cluster and not slow"]
    assert not any("--fast" in c for c in calls)


@pytest.mark.parametrize("pytest_rc", [1, 5])  # 5: pytest collected no tests, which must fail too
def test_failures_and_empty_collections_fail(tmp_path, pytest_rc):
    rc, _ = _run(tmp_path, "--fast", pytest_rc=pytest_rc)
    assert rc != 0
