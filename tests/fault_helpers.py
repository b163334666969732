"""Stage callables that fail on purpose (imported by Ray actors and Dask workers: tests put this folder on
PYTHONPATH). Failure counts live in files, so they survive across processes and actor restarts."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def _count_and_maybe_fail(counter_dir: str, key: str, times: int) -> None:
    d = Path(counter_dir)
    d.mkdir(parents=True, exist_ok=True)
    done = len(list(d.glob(f"{key}.*")))
    if done < times:
        (d / f"{key}.{done}").write_text(str(os.getpid()))
        raise RuntimeError(f"injected failure {done + 1} of {times} for {key} (CUDA out of memory)")


def crystal_key(crystal) -> str:
    return hashlib.sha1(crystal.frac_coords.tobytes()).hexdigest()[:12]


class FlakySampler:
    """The random baseline sampler; a shard whose seed is in ``fail`` raises ``fail[seed]`` times first."""

    def __init__(self, fail: dict, counter_dir: str, delay_s: float = 0.0):
        from dosmatgen.screen.baseline import load_random_sampler

        self.inner = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
        self.fail = {str(k): int(v) for k, v in fail.items()}
        self.counter_dir = counter_dir
        self.delay_s = float(delay_s)

    def __call__(self, target, num_atoms, seed):
        time.sleep(self.delay_s)
        if str(seed) in self.fail:
            _count_and_maybe_fail(self.counter_dir, f"seed{seed}", self.fail[str(seed)])
        return self.inner(target, num_atoms, seed)


def load_flaky_sampler(fail: dict, counter_dir: str, delay_s: float = 0.0, device: str = "cpu") -> FlakySampler:
    return FlakySampler(fail, counter_dir, delay_s)


def load_gated_sampler(gate_file: str, constructor_sleep_s: float, delay_s: float = 0.2, device: str = "cpu"):
    """A sampler whose constructor sleeps ``constructor_sleep_s`` when ``gate_file`` exists (a replacement actor
    that takes long to start, e.g. loading a checkpoint on a busy node)."""
    if os.path.exists(gate_file):
        time.sleep(float(constructor_sleep_s))
    return FlakySampler({}, os.path.dirname(gate_file), delay_s)


class FlakyRelaxer:
    """EMT relaxer; a shard whose first crystal's key is in ``fail`` raises ``fail[key]`` times first."""

    def __init__(self, fail: dict, counter_dir: str):
        from dosmatgen.screen.baseline import load_emt_relaxer

        self.inner = load_emt_relaxer(0.2, 5)
        self.fail = {str(k): int(v) for k, v in fail.items()}
        self.counter_dir = counter_dir

    def __call__(self, crystals):
        key = crystal_key(crystals[0])
        if key in self.fail:
            _count_and_maybe_fail(self.counter_dir, key, self.fail[key])
        return self.inner(crystals)


def load_flaky_relaxer(fail: dict, counter_dir: str) -> FlakyRelaxer:
    return FlakyRelaxer(fail, counter_dir)


class EnvRecordingEngine:
    """The test DFT engine that also writes the job's environment to ``out`` (JSON)."""

    def __init__(self, out: str):
        from screen_helpers import load_test_engine

        self.inner = load_test_engine()
        self.out = out

    def compute_dos(self, crystal, id, workdir):
        import json

        Path(self.out).write_text(json.dumps(dict(os.environ)))
        return self.inner.compute_dos(crystal, id, workdir)


def load_env_recording_engine(out: str) -> EnvRecordingEngine:
    return EnvRecordingEngine(out)
