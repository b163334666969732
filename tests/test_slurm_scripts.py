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
    assert "dosmatgen screen \"$CONFIG\" \"$@\"" in text and "python -m" not in text
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


FAKE_SRUN = """#!/bin/bash
echo "srun $*" >> "$FAKE_LOG"
case " $* " in
  *" hostname "*) echo 127.0.0.1 ;;
  *" dask scheduler "*) for ((i=1; i<=$#; i++)); do [ "${!i}" = --scheduler-file ] && j=$((i+1)) && echo {} > "${!j}"; done ;;
esac
"""


def _fake_slurm(tmp_path: Path, fake_dosmatgen: bool) -> dict[str, str]:
    """A PATH with logging stand-ins for srun/scontrol (and optionally dosmatgen), and a Slurm-like environment."""
    import os
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {"srun": FAKE_SRUN, "scontrol": "#!/bin/bash\necho \"scontrol $*\" >> \"$FAKE_LOG\"\necho node1\n"}
    if fake_dosmatgen:
        scripts["dosmatgen"] = "#!/bin/bash\necho \"dosmatgen $*\" >> \"$FAKE_LOG\"\n"
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FAKE_LOG": str(tmp_path / "calls.log"), "DOSMATGEN_SLURM_DIR": str(SLURM), "SCRATCH": str(tmp_path / "scratch"),
            "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node1", "SLURM_CPUS_PER_TASK": "2",
            "DOSMATGEN_RAY_HEAD_WAIT": "0", "DOSMATGEN_RAY_WORKER_WAIT": "0"}


@pytest.mark.parametrize("bad, message", [
    (["--stop-after", "dft"], "invalid choice: 'dft'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--set", "run.shard_size=0"], "run.shard_size: must be >= 1"),
])
def test_screen_script_rejects_a_wrong_option_before_starting_any_service(tmp_path, bad, message):
    """Issue 17 defect 8: the real `dosmatgen screen` entry point validates the forwarded options (and the config)
    before the script starts Ray or Dask: no srun/scontrol call happens."""
    env = _fake_slurm(tmp_path, fake_dosmatgen=False)
    config = SLURM.parent / "configs" / "screen" / "ci.yaml"
    proc = subprocess.run(["bash", str(SLURM / "screen.sh"), str(config), *bad], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not (tmp_path / "calls.log").exists()


def test_screen_script_forwards_every_option_to_the_dosmatgen_entry_point(tmp_path):
    env = _fake_slurm(tmp_path, fake_dosmatgen=True)
    opts = ["--stop-after", "sample", "--set", "run.dir=/x", "--no-progress"]
    proc = subprocess.run(["bash", str(SLURM / "screen.sh"), "cfg.yaml", *opts], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    screen_calls = [c for c in calls if c.startswith("dosmatgen ")]
    assert screen_calls == [f"dosmatgen screen cfg.yaml {' '.join(opts)} --check", f"dosmatgen screen cfg.yaml {' '.join(opts)}"]
    # the check comes before any service start-up; the run after the Dask scheduler is up (the script waits for it)
    assert calls[0] == screen_calls[0]
    assert any("ray start --head" in c for c in calls)
    assert calls.index(screen_calls[1]) > next(i for i, c in enumerate(calls) if "dask scheduler" in c)


def test_dft_collect_forwards_options_to_the_dosmatgen_entry_point(tmp_path):
    env = _fake_slurm(tmp_path, fake_dosmatgen=True)
    proc = subprocess.run(["bash", str(SLURM / "dft_collect.sh"), "cfg.yaml", "--no-progress"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == ["dosmatgen screen cfg.yaml --resume --no-progress"]
