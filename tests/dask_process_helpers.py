"""A Dask scheduler and workers started as separate processes, as slurm/screen.sh starts them with srun:
``dask scheduler --scheduler-file F [--protocol tls + the run's credentials]`` and ``dask worker --scheduler-file F``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dosmatgen_cluster import tls


def dask_cli() -> str:
    found = shutil.which("dask", path=os.path.dirname(sys.executable)) or shutil.which("dask")
    assert found, "the dask command (distributed) is not installed"
    return found


class DaskProcesses:
    """Start/stop a scheduler and worker processes (each in its own session, killed as a group)."""

    def __init__(self, folder: Path, tls_dir: Path | None) -> None:
        self.folder = Path(folder)
        self.scheduler_file = self.folder / "scheduler.json"
        self.tls_args = tls.cli_args(tls_dir) if tls_dir is not None else []
        self.procs: list[subprocess.Popen] = []

    def _start(self, args: list[str], log_name: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.folder / log_name, "ab")
        p = subprocess.Popen([dask_cli(), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                             env=env)
        self.procs.append(p)
        return p

    def start_scheduler(self, timeout_s: float = 60) -> str:
        proto = ["--protocol", "tls"] if self.tls_args else []
        self._start(["scheduler", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
                     "--dashboard-address", "127.0.0.1:0", *proto, *self.tls_args], "scheduler.log")
        deadline = time.time() + timeout_s
        while not (self.scheduler_file.exists() and self.scheduler_file.stat().st_size) and time.time() < deadline:
            time.sleep(0.2)
        assert self.scheduler_file.exists(), "the scheduler did not write its file"
        import json

        return json.loads(self.scheduler_file.read_text())["address"]

    def start_worker(self, name: str, nworkers: int = 1, env: dict | None = None) -> subprocess.Popen:
        return self._start(["worker", "--scheduler-file", str(self.scheduler_file), "--nworkers", str(nworkers),
                            "--nthreads", "1", "--local-directory", str(self.folder / f"w-{name}"), "--host", "127.0.0.1",
                            "--name", name, *self.tls_args], f"worker-{name}.log", env)

    @staticmethod
    def kill(p: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)

    def stop(self) -> None:
        for p in reversed(self.procs):
            self.kill(p)
