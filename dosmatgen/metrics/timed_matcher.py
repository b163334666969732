"""pymatgen ``StructureMatcher`` with a per-call timeout.

``StructureMatcher`` can take minutes on a pathological pair (large, low-symmetry cells with many candidate
lattices). :class:`TimedStructureMatcher` runs the comparisons in one long-lived worker process
(``python -m dosmatgen.metrics.matcher_worker``, about 1-2 s to start); when a call
exceeds ``timeout_s`` the worker is killed, the call returns ``MatchOutcome.TIMEOUT`` and a fresh worker is
started for the next call. Callers count time-outs and report them; nothing is silently dropped.

With ``timeout_s=None`` the comparisons run in the calling process without a limit.
"""

from __future__ import annotations

import enum
import pickle
import select
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.matcher_worker import compare_arrays, read_message, write_message

#: The tolerances of the DOSMatGen / DiffCSP evaluation.
PAPER_MATCHER_KWARGS = {"stol": 0.5, "angle_tol": 10.0, "ltol": 0.3}
DEFAULT_TIMEOUT_S = 30.0
#: Time allowed for a worker to start and import pymatgen (not counted in the per-call timeout).
WORKER_START_TIMEOUT_S = 300.0


class MatchOutcome(str, enum.Enum):
    MATCH = "match"
    NO_MATCH = "no_match"
    TIMEOUT = "timeout"
    ERROR = "error"  # StructureMatcher raised (reported with its message)
    INVALID = "invalid"  # an input was missing/empty/NaN: never handed to the matcher


@dataclass(frozen=True)
class MatchResult:
    """Outcome of one comparison; ``rms`` is the normalised RMS displacement of a match (None otherwise)."""

    outcome: MatchOutcome
    rms: float | None = None
    message: str = ""

    @property
    def matched(self) -> bool:
        return self.outcome is MatchOutcome.MATCH


def _as_arrays(c: Crystal) -> tuple:
    return (c.atomic_numbers, c.frac_coords, c.lattice)


def _compare_here(matcher_kwargs: dict[str, Any], a: Crystal, b: Crystal) -> MatchResult:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    outcome, rms, message = compare_arrays(StructureMatcher(**matcher_kwargs), _as_arrays(a), _as_arrays(b))
    return MatchResult(MatchOutcome(outcome), rms, message)


class TimedStructureMatcher:
    """Compare crystals with StructureMatcher(**kwargs), each call limited to ``timeout_s`` seconds.

    Use as a context manager (or call :meth:`close`) so that the worker process is stopped.
    ``stats`` counts the outcomes of every call made so far.
    """

    def __init__(self, timeout_s: float | None = DEFAULT_TIMEOUT_S, **matcher_kwargs: Any) -> None:
        self.matcher_kwargs = {**PAPER_MATCHER_KWARGS, **matcher_kwargs}
        self.timeout_s = timeout_s
        self.stats: dict[str, int] = {o.value: 0 for o in MatchOutcome}
        self._proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------ worker
    def _start(self) -> None:
        # a fresh interpreter (not fork: the parent may hold torch/OpenMP threads; not multiprocessing spawn:
        # that would re-import an unguarded user __main__)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dosmatgen.metrics.matcher_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        try:
            write_message(self._proc.stdin, self.matcher_kwargs)
            ready = self._wait(WORKER_START_TIMEOUT_S) and read_message(self._proc.stdout) == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._kill()
            raise RuntimeError(f"StructureMatcher worker process did not start within {WORKER_START_TIMEOUT_S} s")

    def _wait(self, timeout: float | None) -> bool:
        """True when the worker has something to read within ``timeout`` seconds."""
        assert self._proc is not None and self._proc.stdout is not None
        readable, _, _ = select.select([self._proc.stdout], [], [], timeout)
        return bool(readable)

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                write_message(self._proc.stdin, None)
                self._proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> "TimedStructureMatcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the contract
        try:
            self._kill()
        except Exception:  # noqa: BLE001
            pass

    # ------------------------------------------------------------------ matching
    def compare(self, a: Crystal | None, b: Crystal | None) -> MatchResult:
        """Compare two crystals; None (an invalid structure) gives ``INVALID`` without calling the matcher."""
        if a is None or b is None:
            result = MatchResult(MatchOutcome.INVALID)
        elif self.timeout_s is None:
            result = _compare_here(self.matcher_kwargs, a, b)
        else:
            result = self._compare_in_worker(a, b)
        self.stats[result.outcome.value] += 1
        return result

    def _compare_in_worker(self, a: Crystal, b: Crystal) -> MatchResult:
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._start()
        assert self._proc is not None
        try:
            write_message(self._proc.stdin, (_as_arrays(a), _as_arrays(b)))  # plain arrays cross the pipe
            if self._wait(self.timeout_s):
                outcome, rms, message = read_message(self._proc.stdout)
                return MatchResult(MatchOutcome(outcome), rms, message)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._kill()
            return MatchResult(MatchOutcome.ERROR, None, "matcher worker died")
        self._kill()
        return MatchResult(MatchOutcome.TIMEOUT, None, f"StructureMatcher took longer than {self.timeout_s} s")
