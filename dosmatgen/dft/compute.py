"""Resumable batch DOS computation: one isolated subprocess and one record file per structure.

Layout of ``out_dir``::

    records/<name>.npz      one record per finished structure (keys of dos-gpaw-v1's dataset.npz, N = 1)
    failures.jsonl          one JSON line per failed structure: id, source, kind, error, seconds, log, engine, time
    work/<name>/            per-structure work folder: job.json, result.json, worker.log and the engine's log
                            (GPAW: gpaw.txt), kept for every structure
    .compute.lock           held while a run is active (two runs on one folder are refused)

``<name>`` is the id when it is a safe file name, else a sanitised id plus a short hash. A rerun skips ids that
have a record or are packed in a ``dataset*.npz`` (:mod:`dosmatgen.dft.record_pack`), and ids listed in failures.jsonl unless ``retry_failed`` is set (a retried id that succeeds is
removed from failures.jsonl). Each structure runs in ``python -m dosmatgen.dft.worker`` with its own session,
``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` = ``threads`` and a wall-clock limit; on
time-out its whole process group is killed and the structure is recorded as failed with kind ``timeout``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTEngine
from dosmatgen.dft.record_pack import packed_ids
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import DosmatgenError, InvalidRecordError

log = logging.getLogger(__name__)

RECORDS_DIR = "records"
WORK_DIR = "work"
FAILURES_FILE = "failures.jsonl"
LOCK_FILE = ".compute.lock"
#: default per-structure wall-clock limit, seconds (dos-gpaw-v1's slowest success took 412 s on one core)
DEFAULT_TIME_LIMIT_S = 1800.0

#: an input item: ``(id, crystal)``, ``(id, crystal, source)`` or a structure-only DOSRecord
StructureItem = Union[tuple[str, Crystal], tuple[str, Crystal, str], DOSRecord]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,150}$")


def record_name(id: str) -> str:
    """File-system name of an id: the id itself when safe, else a sanitised id plus an 8-hex-digit hash."""
    if _SAFE.match(id):
        return id
    cleaned = re.sub(r"[^A-Za-z0-9._+=-]", "_", id)[:120].lstrip(".") or "id"
    return f"{cleaned}-{hashlib.sha1(id.encode()).hexdigest()[:8]}"


def record_path(out_dir: str | Path, id: str) -> Path:
    return Path(out_dir) / RECORDS_DIR / f"{record_name(id)}.npz"


@dataclass
class ComputeSummary:
    """What one :func:`compute_dos_dataset` call did."""

    done: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    skipped_done: int = 0
    skipped_failed: int = 0
    duplicates: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # DFT wall seconds of each new record
    wall_s: float = 0.0

    def line(self) -> str:
        return (
            f"{len(self.done)} computed, {len(self.failed)} failed, {self.skipped_done} skipped (already done), "
            f"{self.skipped_failed} skipped (failed before), {self.duplicates} duplicate ids, {self.wall_s:.0f} s"
        )


# --------------------------------------------------------------------------- failures.jsonl
def read_failures(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """id -> last failure entry of ``out_dir/failures.jsonl`` (unreadable lines, e.g. a torn last line, are skipped)."""
    path = Path(out_dir) / FAILURES_FILE
    entries: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return entries
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entries[str(entry["id"])] = entry
        except (json.JSONDecodeError, KeyError, TypeError):
            log.warning("%s line %d is not a failure entry; ignored", path, n)
    return entries


def _append_failure(out_dir: Path, entry: dict[str, Any]) -> None:
    with open(out_dir / FAILURES_FILE, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _drop_failures(out_dir: Path, ids: set[str]) -> None:
    """Rewrite failures.jsonl atomically without the entries of ``ids``."""
    path = out_dir / FAILURES_FILE
    if not ids or not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("id") in ids:
                continue
        except (json.JSONDecodeError, AttributeError):
            pass
        kept.append(line)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(f"{line}\n" for line in kept))
    os.replace(tmp, path)


def completed_ids(out_dir: str | Path) -> tuple[set[str], set[str]]:
    """``(done, failed)``: record names present in ``records/`` or packed into ``dataset*.npz`` (see
    :mod:`dosmatgen.dft.record_pack`), and ids listed in failures.jsonl without a record.

    ``done`` holds record *names* (see :func:`record_name`), which equal the ids for safe ids.
    """
    out = Path(out_dir)
    rec = out / RECORDS_DIR
    done = {p.stem for p in rec.glob("*.npz")} if rec.is_dir() else set()
    done |= {record_name(i) for i in packed_ids(out)}
    failed = {i for i in read_failures(out) if record_name(i) not in done}
    return done, failed


# --------------------------------------------------------------------------- one isolated structure
def _limit_memory(megabytes: int | None):
    if megabytes is None:
        return None

    def apply() -> None:
        import resource

        limit = int(megabytes) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 5) -> str:
    try:
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def run_isolated(
    engine: DFTEngine,
    crystal: Crystal,
    id: str,
    source: str,
    workdir: Path,
    out_path: Path,
    time_limit_s: float,
    threads: int = 1,
    memory_limit_mb: int | None = None,
) -> dict[str, Any]:
    """Compute one structure in a worker subprocess; return ``{"ok": True, ...}`` or ``{"ok": False, "kind", "error"}``.

    The record is written to ``out_path`` (atomically) by the worker. Kinds added here: ``timeout`` (killed after
    ``time_limit_s`` wall seconds) and ``crashed`` (the worker died without a result, e.g. a segfault or
    out-of-memory kill; the error quotes the end of worker.log).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / "result.json"
    result_path.unlink(missing_ok=True)
    job = {
        "engine": engine.name,
        "engine_class": f"{type(engine).__module__}:{type(engine).__qualname__}",
        "engine_config": engine.config(),
        "id": id,
        "source": source,
        "atomic_numbers": crystal.atomic_numbers.tolist(),
        "frac_coords": crystal.frac_coords.tolist(),
        "lattice": crystal.lattice.tolist(),
        "workdir": str(workdir),
        "record_path": str(out_path),
        "result_path": str(result_path),
    }
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(job))
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(int(threads))
    start = time.monotonic()
    with open(workdir / "worker.log", "w") as worker_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dosmatgen.dft.worker", str(job_path)],
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_limit_memory(memory_limit_mb),
        )
        try:
            rc = proc.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"ok": False, "kind": "timeout", "error": f"no result after the {time_limit_s:g} s time limit",
                    "seconds": time.monotonic() - start}  # fmt: skip
        except BaseException:  # Ctrl-C or the caller's own exception: never leave an orphan DFT process
            _kill_group(proc)
            raise
    wall = time.monotonic() - start
    if result_path.exists():
        result = json.loads(result_path.read_text())
        result.setdefault("seconds", wall)
        return result
    how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
    return {"ok": False, "kind": "crashed", "error": f"worker died ({how}): {_tail(workdir / 'worker.log')}", "seconds": wall}


# --------------------------------------------------------------------------- the batch
def _normalise(item: StructureItem) -> tuple[str, Crystal, str]:
    if isinstance(item, DOSRecord):
        return item.id, item.crystal, item.source
    if len(item) == 2:
        id, crystal = item  # type: ignore[misc]
        return str(id), crystal, str(crystal.metadata.get("source", "structures"))
    id, crystal, source = item  # type: ignore[misc]
    return str(id), crystal, str(source)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    with open(out_dir / LOCK_FILE, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DosmatgenError(f"{out_dir} is in use by another 'data compute' run (lock {LOCK_FILE})") from None
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_temporaries(records: Path) -> None:
    for tmp in records.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


def compute_dos_dataset(
    crystals_with_ids: Iterable[StructureItem],
    out_dir: str | Path,
    engine: DFTEngine,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    *,
    retry_failed: bool = False,
    threads: int = 1,
    memory_limit_mb: int | None = None,
    progress: bool = True,
    total: int | None = None,
    on_result: Callable[[str, dict[str, Any]], None] | None = None,
) -> ComputeSummary:
    """Compute the DOS of every structure not done yet; one record file per structure in ``out_dir/records``.

    ``crystals_with_ids`` yields ``(id, crystal)``, ``(id, crystal, source)`` or structure-only DOSRecords; it may
    be a lazy generator (``total`` sets the progress bar length when it has no ``len``). Structures that fail
    geometry checks are recorded as ``invalid_input`` without starting DFT. ``on_result(id, result)`` is called
    after each attempted structure (``result``: ``ok``, ``seconds``, and ``kind``/``error`` on failure).
    Returns a :class:`ComputeSummary`.
    Safe to interrupt and rerun at any point.
    """
    engine.check_available()
    out = Path(out_dir)
    records = out / RECORDS_DIR
    records.mkdir(parents=True, exist_ok=True)
    (out / WORK_DIR).mkdir(exist_ok=True)
    summary = ComputeSummary()
    t0 = time.monotonic()
    if total is None and hasattr(crystals_with_ids, "__len__"):
        total = len(crystals_with_ids)  # type: ignore[arg-type]

    with _exclusive(out):
        _clean_temporaries(records)
        failures = read_failures(out)
        packed = packed_ids(out)  # ids already packed into out/dataset*.npz count as done
        seen: set[str] = set()
        recovered: set[str] = set()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="structure", desc=f"{engine.name} DOS", dynamic_ncols=True)
        try:
            for item in crystals_with_ids:
                id, crystal, source = _normalise(item)
                if id in seen:
                    summary.duplicates += 1
                elif id in packed or record_path(out, id).exists():
                    summary.skipped_done += 1
                elif id in failures and not retry_failed:
                    summary.skipped_failed += 1
                else:
                    result = _compute_one(engine, out, id, crystal, source, time_limit_s, threads, memory_limit_mb,
                                          summary, failures, recovered)  # fmt: skip
                    if on_result is not None:
                        on_result(id, result)
                seen.add(id)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(done=len(summary.done), failed=len(summary.failed),
                                    skipped=summary.skipped_done + summary.skipped_failed)  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
            _drop_failures(out, recovered)
    summary.wall_s = time.monotonic() - t0
    return summary


def _compute_one(
    engine: DFTEngine,
    out: Path,
    id: str,
    crystal: Crystal,
    source: str,
    time_limit_s: float,
    threads: int,
    memory_limit_mb: int | None,
    summary: ComputeSummary,
    failures: dict[str, dict[str, Any]],
    recovered: set[str],
) -> dict[str, Any]:
    name = record_name(id)
    workdir = out / WORK_DIR / name
    try:
        crystal.validate_geometry()
        result = run_isolated(engine, crystal, id, source, workdir, record_path(out, id), time_limit_s, threads,
                              memory_limit_mb)  # fmt: skip
    except InvalidRecordError as err:
        result = {"ok": False, "kind": "invalid_input", "error": err.problem, "seconds": 0.0}
    if result.get("ok") and record_path(out, id).exists():
        summary.done.append(id)
        summary.seconds[id] = float(result.get("seconds") or 0.0)
        if id in failures:
            recovered.add(id)
        return result
    entry = {
        "id": id,
        "source": source,
        "kind": result.get("kind", "crashed"),
        "error": result.get("error", "worker reported success but wrote no record"),
        "seconds": round(float(result.get("seconds") or 0.0), 2),
        "n_atoms": crystal.num_atoms,
        "formula": crystal.formula,
        "engine": engine.name,
        "log": str(Path(WORK_DIR) / name),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _append_failure(out, entry)
    failures[id] = entry
    summary.failed.append(entry)
    log.info("failed %s: %s: %s", id, entry["kind"], entry["error"])
    return {"ok": False, **{k: entry[k] for k in ("kind", "error", "seconds")}}
