"""The sbatch scripts: syntax, Perlmutter directives, GPU count parsing, dashboard never on 0.0.0.0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[1] / "slurm"
SCRIPTS = ["screen.sh", "train.sh", "dft_collect.sh", "loop.sh"]


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
    assert "dosmatgen \"$DRIVER\" \"$CONFIG\" \"$@\"" in text and "python -m" not in text
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
    scripts = {"srun": FAKE_SRUN, "scontrol": "#!/bin/bash\necho \"scontrol $*\" >> \"$FAKE_LOG\"\necho node1\n",
               # `ray status` is the script's readiness poll of the Ray head (run directly, not through srun)
               "ray": "#!/bin/bash\necho \"ray $*\" >> \"$FAKE_LOG\"\n"}
    if fake_dosmatgen:
        scripts["dosmatgen"] = "#!/bin/bash\necho \"dosmatgen $*\" >> \"$FAKE_LOG\"\n"
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FAKE_LOG": str(tmp_path / "calls.log"), "DOSMATGEN_SLURM_DIR": str(SLURM), "SCRATCH": str(tmp_path / "scratch"),
            "SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node1", "SLURM_CPUS_PER_TASK": "2",
            "DOSMATGEN_RAY_HEAD_WAIT": "0", "DOSMATGEN_RAY_WORKER_WAIT": "0",
            # the venv's bin is already on PATH above; activating DOSMATGEN_VENV (CI sets it) would put the real
            # dosmatgen ahead of the logging stand-in
            "DOSMATGEN_VENV": ""}


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


def test_loop_script_runs_the_loop_on_the_screen_services(tmp_path):
    env = _fake_slurm(tmp_path, fake_dosmatgen=True)
    env["DOSMATGEN_SLURM_DIR"] = str(SLURM)
    opts = ["--rounds", "2", "--set", "loop.dir=/x"]
    proc = subprocess.run(["bash", str(SLURM / "loop.sh"), "loop.yaml", *opts], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    driver = [c for c in calls if c.startswith("dosmatgen ")]
    assert driver == [f"dosmatgen loop loop.yaml {' '.join(opts)} --check", f"dosmatgen loop loop.yaml {' '.join(opts)}"]
    assert calls[0] == driver[0] and any("ray start --head" in c for c in calls)
    assert calls.index(driver[1]) > next(i for i, c in enumerate(calls) if "dask scheduler" in c)
    d = _directives(SLURM / "loop.sh")
    assert "--requeue" in d and "--signal=B:USR1@600" in d and "--gpus-per-task=4" in d
    bad = subprocess.run(["bash", str(SLURM / "screen.sh"), "x.yaml"], capture_output=True, text=True, timeout=60,
                         env={**env, "DOSMATGEN_DRIVER": "rm"})
    assert bad.returncode == 2 and "DOSMATGEN_DRIVER must be screen or loop" in bad.stderr


def test_dft_collect_forwards_options_to_the_dosmatgen_entry_point(tmp_path):
    env = _fake_slurm(tmp_path, fake_dosmatgen=True)
    proc = subprocess.run(["bash", str(SLURM / "dft_collect.sh"), "cfg.yaml", "--no-progress"], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == ["dosmatgen screen cfg.yaml --resume --no-progress"]


def _fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    f = d / name
    f.write_text("#!/bin/bash\n" + body + "\n")
    f.chmod(0o755)
    return d


def _bash(script: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source {SLURM / 'common.sh'} && {script}"], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SLURM_TRES_PER_TASK": "gres/gpu=4", "SLURM_CPUS_PER_TASK": "128"}, ["0", "1", "2", "3"]),
        ({"SLURM_TRES_PER_TASK": "gres/gpu=2", "SLURM_CPUS_PER_TASK": "64", "CUDA_VISIBLE_DEVICES": "2,3"}, ["2", "3"]),
    ],
)
def test_one_dask_worker_per_gpu_pinned_with_cuda_visible_devices(tmp_path, env, expected):
    log = tmp_path / "dask.log"
    bindir = _fake_bin(tmp_path, "dask", f'echo "CVD=$CUDA_VISIBLE_DEVICES OMP=$OMP_NUM_THREADS $*" >> {log}')
    run_env = {"PATH": f"{bindir}:/usr/bin:/bin", "DOSMATGEN_DASK_SCHEDULER_FILE": "/s/sched.json",
               "DOSMATGEN_DASK_TLS_DIR": "/s/tls", **env}
    proc = _bash("dmg_node_dask_workers", run_env)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(log.read_text().splitlines())
    assert [ln.split()[0] for ln in lines] == [f"CVD={g}" for g in expected]
    threads = int(env["SLURM_CPUS_PER_TASK"]) // len(expected)
    for ln in lines:
        assert f"OMP={threads} worker --scheduler-file /s/sched.json" in ln and "--nworkers 1" in ln
        assert "--tls-ca-file /s/tls/ca.pem --tls-cert /s/tls/cert.pem --tls-key /s/tls/key.pem" in ln
        assert "--resources GPU=1" in ln
    assert _bash("dmg_expected_dask_workers 4", run_env).stdout.strip() == str(4 * len(expected))


def test_cpu_nodes_get_cpu_workers(tmp_path):
    log = tmp_path / "dask.log"
    bindir = _fake_bin(tmp_path, "dask", f'echo "CVD=${{CUDA_VISIBLE_DEVICES:-none}} $*" >> {log}')
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "DOSMATGEN_DASK_SCHEDULER_FILE": "/s/f", "DOSMATGEN_DASK_TLS_DIR": "/t",
           "SLURM_CPUS_PER_TASK": "32"}
    assert _bash("dmg_node_dask_workers", env).returncode == 0
    (line,) = log.read_text().splitlines()
    assert line.startswith("CVD=none") and "--nworkers 4" in line


def test_walltime_signal_stops_the_driver_and_requeues(tmp_path):
    """USR1 (sbatch --signal=B:USR1@600) reaches the batch shell: the driver gets SIGTERM and the job is requeued."""
    calls = tmp_path / "scontrol.calls"
    bindir = _fake_bin(tmp_path, "scontrol", f'echo "$*" >> {calls}')
    driver = tmp_path / "driver.sh"
    driver.write_text(f"trap 'echo stopped > {tmp_path}/driver.out; exit 143' TERM\nwhile true; do sleep 0.1; done\n")
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "SLURM_JOB_ID": "4242", "DOSMATGEN_STOP_GRACE_S": "20"}
    import os
    import signal
    import time

    p = subprocess.Popen(["bash", "-c", f"source {SLURM / 'common.sh'} && dmg_run_driver bash {driver}; echo rc=$?"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.0)
    t0 = time.time()
    os.kill(p.pid, signal.SIGUSR1)
    out, err = p.communicate(timeout=60)
    assert time.time() - t0 < 15
    assert (tmp_path / "driver.out").read_text().strip() == "stopped"  # the driver got SIGTERM and exited
    assert calls.read_text().split() == ["requeue", "4242"]
    assert "rc=0" in out and "requeueing job 4242" in err


def test_driver_exit_status_passes_through_without_a_signal(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}
    assert _bash("dmg_run_driver bash -c 'exit 3'; echo rc=$?", env).stdout.strip() == "rc=3"


@pytest.mark.parametrize("restarts, args, expected", [("0", "", ""), ("1", "", "--resume"), ("2", "--resume", ""),
                                                      ("", "--set a=b", "")])
def test_requeued_job_resumes(restarts, args, expected):
    env = {"PATH": "/usr/bin:/bin", "SLURM_RESTART_COUNT": restarts}
    assert _bash(f"dmg_resume_args {args}", env).stdout.strip() == expected


def test_wait_until_polls_and_fails_clearly(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DMG_POLL_S": "0.2"}
    flag = tmp_path / "ready"
    ok = subprocess.Popen(["bash", "-c", f"source {SLURM / 'common.sh'} && dmg_wait_until 20 thing test -e {flag} && echo up"],
                          stdout=subprocess.PIPE, text=True, env=env)
    import time

    time.sleep(1)
    flag.write_text("")
    assert ok.communicate(timeout=30)[0].strip() == "up"
    proc = _bash("dmg_wait_until 1 'Ray head 10.0.0.1:6379' false", env)
    assert proc.returncode == 1 and "Ray head 10.0.0.1:6379 not ready after 1 s" in proc.stderr


def test_job_secrets_are_fresh_private_files(tmp_path):
    import os
    import sys

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(SLURM.parent), "HOME": str(tmp_path)}
    script = f'DMG_RUN=(); dmg_job_secrets {tmp_path}/job && echo "$RAY_AUTH_MODE $RAY_AUTH_TOKEN_PATH $DOSMATGEN_DASK_TLS_DIR"'
    first = _bash(script, env)
    assert first.returncode == 0, first.stderr
    mode, token_path, tls_dir = first.stdout.split()
    assert mode == "token" and token_path == str(tmp_path / "job" / "ray_auth_token") and tls_dir == str(tmp_path / "job" / "tls")
    token = Path(token_path).read_text()
    assert len(token) == 64 and os.stat(token_path).st_mode & 0o777 == 0o600
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert os.stat(Path(tls_dir) / name).st_mode & 0o777 == 0o600
    again = _bash(script, env)  # a requeued job: new secrets
    assert again.returncode == 0, again.stderr
    assert Path(token_path).read_text() != token


@pytest.mark.parametrize("name", ["screen.sh", "train.sh"])
def test_gpu_scripts_requeue_at_walltime_and_never_sleep_blindly(name):
    d = _directives(SLURM / name)
    assert any(re.fullmatch(r"--signal=B:USR1@\d+", x) for x in d) and "--requeue" in d
    text = (SLURM / name).read_text()
    assert "dmg_run_driver" in text and "dmg_resume_args" in text and "dmg_job_secrets" in text
    assert not re.search(r"^\s*sleep ", text, re.M)
