"""The sbatch scripts: syntax, Perlmutter directives, GPU count parsing, dashboard never on 0.0.0.0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[1] / "slurm"
SCRIPTS = ["screen.sh", "train.sh", "dft_collect.sh"]


def _directives(path: Path) -> list[str]:
    return [line[len("#SBATCH "):].strip() for line in path.read_text().splitlines() if line.startswith("#SBATCH ")]


@pytest.mark.parametrize("name", SCRIPTS + ["common.sh"])
def test_bash_syntax(name):
    proc = subprocess.run(["bash", "-n", str(SLURM / name)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["screen.sh", "train.sh"])
def test_gpu_scripts_follow_perlmutter_conventions(name):
    d = _directives(SLURM / name)
    for want in ("-C gpu", "-q regular", "--ntasks-per-node=1", "--gpus-per-task=4", "--cpus-per-task=128"):
        assert want in d, f"{name} lacks #SBATCH {want}"
    assert any(x.startswith("-A ") and x.endswith("_g") for x in d)
    text = (SLURM / name).read_text()
    assert "0.0.0.0" not in text and "--dashboard-host=127.0.0.1" in text
    assert "ssh -J" in text and "-L 8265:127.0.0.1:8265" in text
    assert "RAY_AUTH_MODE" in (SLURM / "common.sh").read_text() and "dmg_setup_env" in text
    assert "ray start --head" in text and "ray start --address" in text and ("$SCRATCH" in text or "${SCRATCH}" in text)


def test_screen_script_overlaps_later_steps_and_submits_without_waiting():
    text = (SLURM / "screen.sh").read_text()
    assert text.count("srun --overlap") >= 2  # Dask scheduler and workers join nodes that Ray holds
    assert "python -u -m dosmatgen_cluster.screen" in text
    assert "--resume" in (SLURM / "dft_collect.sh").read_text()
    assert "-C cpu" in _directives(SLURM / "dft_collect.sh")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SLURM_TRES_PER_TASK": "gres/gpu=4"}, "4"),
        ({"SLURM_TRES_PER_TASK": "cpu=128,gres/gpu:a100=4"}, "4"),
        ({"SLURM_TRES_PER_TASK": "gres:gpu:2"}, "2"),
        ({"SLURM_GPUS_PER_TASK": "3", "SLURM_TRES_PER_TASK": "gres/gpu=4"}, "3"),
        ({"SLURM_TRES_PER_TASK": "cpu=2"}, "0"),
        ({}, "0"),
    ],
)
def test_gpu_count_parsing(env, expected):
    proc = subprocess.run(["bash", "-c", f"source {SLURM / 'common.sh'} && dmg_gpus_per_task"],
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **env})
    assert proc.stdout.strip() == expected, proc.stderr


def test_no_script_binds_dashboards_publicly():
    for path in SLURM.glob("*.sh"):
        assert not re.search(r"dashboard[-_]host[= ]0\.0\.0\.0", path.read_text())
