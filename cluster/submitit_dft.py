"""DFT stage with submitit: a job array over the selected top-K candidates of every target.

* Executor: ``submitit.AutoExecutor(folder, cluster=...)`` with ``cluster`` = ``local`` (a laptop: subprocesses,
  the driver waits), ``slurm`` (NERSC: the driver submits and exits; ``dosmatgen screen --resume`` or
  ``slurm/dft_collect.sh`` collects), ``debug`` (in-process) or ``auto`` (Slurm when ``srun`` is on PATH).
* Slurm parameters come from the config's ``dft.submitit`` section: ``slurm_partition``, ``slurm_qos``,
  ``slurm_account``, ``slurm_constraint``, ``slurm_setup`` (e.g. ``["module load gpaw"]``),
  ``slurm_array_parallelism``, ``timeout_min``, ``cpus_per_task``, ``srun_args`` (inner srun of the DFT step),
  ``python`` (the command that starts Python in the job, e.g. ``shifter --image=IMAGE python`` for a container),
  ``units_per_job`` (k > 1: k small units share one node, run concurrently by :class:`jobs.dft_job.DFTGroupJob`,
  VASP with ``cpus/2/k`` ranks each).
  ``tasks_per_node`` is always 1: submitit runs the function under srun, so more tasks would run it twice.
* Each job writes its own selection slot (one Zarr chunk per slot) and its manifest marker; failures are
  recorded and retried up to ``max_attempts`` (counted in the failure records, so also across driver runs).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
import submitit.helpers

from dosmatgen.screen.pending import pending_units
from dosmatgen_jobs.dft_job import DFTGroupJob, DFTJob

log = logging.getLogger(__name__)

SUBMISSIONS_FILE = "dft_submissions.json"
_EXECUTOR_KEYS = {"cluster", "folder", "srun_args", "wait", "python", "units_per_job"}


@dataclass
class DFTStageReport:
    submitted: int = 0
    completed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    waiting_on_scheduler: bool = False
    job_ids: list[str] = field(default_factory=list)
    in_flight: int = 0  # slots whose earlier Slurm job is still queued or running (not submitted again)


def make_executor(folder: str | Path, options: dict[str, Any]) -> submitit.Executor:
    """An AutoExecutor for ``options['cluster']`` (local/slurm/debug/auto) with the remaining options applied."""
    cluster = options.get("cluster", "local")
    if cluster not in ("local", "slurm", "debug", "auto"):
        raise ValueError(f"dft.submitit.cluster must be local, slurm, debug or auto, got {cluster!r}")
    extra = {}
    if options.get("python"):
        # how the DFT job starts Python, e.g. "shifter --image=<image> python" to run it inside the container
        extra["slurm_python"] = str(options["python"])
    ex = submitit.AutoExecutor(folder=str(folder), cluster=None if cluster == "auto" else cluster, **extra)
    params = {k: v for k, v in options.items() if k not in _EXECUTOR_KEYS}
    params.setdefault("timeout_min", 60)
    params["tasks_per_node"] = 1
    params.setdefault("name", "dosmatgen-dft")
    if int(options.get("units_per_job", 1)) > 1 and cluster in ("slurm", "auto"):
        # several units share the node: the Python function runs in the batch step, so that each unit's own
        # `srun --exact` step gets its share of the CPUs (a submitit srun step would already hold them all)
        params["slurm_use_srun"] = False
    ex.update_parameters(**params)
    return ex


def make_executor_cluster(options: dict[str, Any]) -> str:
    """The executor kind ``options`` asks for: ``auto`` means Slurm when ``srun`` is on PATH (as submitit decides)."""
    import shutil

    cluster = options.get("cluster", "local")
    if cluster == "auto":
        return "slurm" if shutil.which("srun") else "local"
    return cluster


def is_scheduler(executor: submitit.Executor) -> bool:
    return getattr(executor, "cluster", "") == "slurm"


#: Slurm job states in which a submitted DFT job may still produce its result
ACTIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESV_DEL_HOLD"}


def squeue_states(job_ids: list[str], timeout_s: float = 60.0) -> dict[str, str]:
    """``{job id: state}`` of the given jobs that Slurm still lists (array tasks as ``<array>_<index>``).

    Raises RuntimeError when squeue fails: then nothing can be said about in-flight jobs, and resubmitting
    blindly could run (and bill) the same calculations twice.
    """
    import subprocess

    if not job_ids:
        return {}
    arrays = sorted({str(j).split("_")[0] for j in job_ids})
    proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(arrays)], capture_output=True,
                          text=True, timeout=timeout_s)
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # every listed job has left the queue
        raise RuntimeError(f"squeue failed ({proc.returncode}): {proc.stderr.strip()}")
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return {j: states[j] for j in map(str, job_ids) if j in states}


def _history(store) -> list[dict[str, Any]]:
    """The submissions recorded in ``<run>/dft_submissions.json`` (oldest first)."""
    path = store.root / SUBMISSIONS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def slurm_job_ids(store) -> list[str]:
    """Every Slurm job id this run has submitted for DFT."""
    return [str(j["job_id"]) for h in _history(store) if h.get("cluster") == "slurm" for j in h["jobs"]]


def reconcile_submissions(store, states: dict[str, str]) -> list[tuple[str, int]]:
    """Compare the latest Slurm submission of every unfinished slot with the queue (``states`` from
    :func:`squeue_states`). Returns the slots whose job is still queued or running (not to be submitted again).
    A job that left the queue without a result and without recording its own failure (killed for time or memory,
    node failure, cancelled) gets a failure recorded here, so it counts as an attempt and is retried up to
    ``max_attempts``."""
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for h in _history(store):
        if h.get("cluster") != "slurm":
            continue
        for j in h["jobs"]:
            latest[(j["target"], int(j["k"]))] = j
    in_flight = []
    for (tid, k), j in sorted(latest.items()):
        if store.manifest.is_done("dft", tid, k):
            continue
        state = states.get(str(j["job_id"]))
        if state in ACTIVE_STATES:
            in_flight.append((tid, k))
        elif _attempts(store, tid, k) == int(j.get("attempts_before", 0)):
            store.manifest.record_failure("dft", tid, k, f"Slurm job {j['job_id']} left the queue ({state or 'finished'}) "
                                          "without a result or a failure record (time or memory limit, node failure, "
                                          f"cancelled?); see its submitit log")
            # recorded once: the attempt count now differs from the job's attempts_before
    return in_flight


def submit(store, units: list[tuple[str, int]], loader: str, options: dict[str, Any],
           executor_options: dict[str, Any]) -> tuple[submitit.Executor, list[submitit.Job]]:
    """Submit one job array over ``units``; the job ids are appended to ``<run>/dft_submissions.json``."""
    folder = Path(executor_options.get("folder") or store.root / "submitit")
    job = DFTJob(str(store.root), loader, options, str(store.root / "dft_work"), executor_options.get("srun_args"))
    # the driver runs inside the GPU job: without clean_env, sbatch would hand the DFT jobs that job's SLURM_* and
    # SRUN_* variables (its CPU/GPU counts, node list, step ids), and the DFT job's own srun would obey them
    per_job = int(executor_options.get("units_per_job", 1))
    if per_job < 1:
        raise ValueError(f"dft.submitit.units_per_job must be >= 1, got {per_job}")
    with submitit.helpers.clean_env():
        executor = make_executor(folder, executor_options)
        if per_job == 1:
            jobs = executor.map_array(job, [u[0] for u in units], [u[1] for u in units]) if units else []
        else:
            group = DFTGroupJob(str(store.root), loader, options, str(store.root / "dft_work"))
            groups = [[list(u) for u in units[i:i + per_job]] for i in range(0, len(units), per_job)]
            # one job per group; the same job listed once per unit it runs
            jobs = [j for j, g in zip(executor.map_array(group, groups), groups) for _ in g] if units else []
    record_path = store.root / SUBMISSIONS_FILE
    history = _history(store)
    history.append({"time": time.time(), "cluster": getattr(executor, "cluster", "?"),
                    "jobs": [{"job_id": j.job_id, "target": u[0], "k": u[1], "attempts_before": _attempts(store, *u)}
                             for j, u in zip(jobs, units)]})
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history, indent=1))
    tmp.replace(record_path)
    return executor, jobs


def wait_for(jobs: list[submitit.Job], units: list[tuple[str, int]], timeout_s: float) -> tuple[int, list[tuple[str, int, str]]]:
    """Wait for local jobs; (number completed, [(target, k, error)]). Failures are already in the manifest."""
    done, errors = 0, []
    deadline = time.monotonic() + timeout_s
    for job, unit in zip(jobs, units):
        while not job.done():
            if time.monotonic() > deadline:
                job.cancel(check=False)
                errors.append((unit[0], unit[1], f"timeout after {timeout_s:.0f} s"))
                break
            time.sleep(0.5)
        else:
            try:
                job.result()
                done += 1
            except Exception as exc:  # the job failed: recorded by the job itself (or here, if it crashed)
                errors.append((unit[0], unit[1], str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)))
    return done, errors


def run_dft_stage(store, loader: str, options: dict[str, Any], executor_options: dict[str, Any], *,
                  max_attempts: int = 2, timeout_s: float = 24 * 3600, wait: bool | None = None,
                  progress: bool = True) -> DFTStageReport:
    """Run (or submit) every pending DFT slot; retry failed ones up to ``max_attempts`` while waiting.

    ``wait=None`` waits for local/debug executors and submits-and-returns on Slurm (the GPU allocation is
    not held while DFT jobs queue).
    """
    from tqdm import tqdm

    report = DFTStageReport()
    while True:
        in_flight: list[tuple[str, int]] = []
        if make_executor_cluster(executor_options) == "slurm":
            in_flight = reconcile_submissions(store, squeue_states(slurm_job_ids(store)))
        units, given_up = pending_units(store, max_attempts)
        units = [u for u in units if u not in set(in_flight)]
        report.failed = given_up
        report.in_flight = len(in_flight)
        if in_flight and not units:
            report.waiting_on_scheduler = True
            log.info("%d DFT jobs are still queued or running; collect them later with --resume", len(in_flight))
            return report
        if not units:
            return report
        before = {u: _attempts(store, *u) for u in units}
        executor, jobs = submit(store, units, loader, options, executor_options)
        report.submitted += len(jobs)
        report.job_ids += [j for j in dict.fromkeys(x.job_id for x in jobs) if j not in report.job_ids]
        should_wait = (not is_scheduler(executor)) if wait is None else wait
        if not should_wait:
            report.waiting_on_scheduler = True
            log.info("submitted %d DFT jobs (%s); collect them with --resume", len(jobs), ", ".join(report.job_ids[:5]))
            return report
        with tqdm(total=len(jobs), desc="dft", unit="job", disable=not progress) as bar:
            done, errors = wait_for(jobs, units, timeout_s)
            bar.update(len(jobs))
        report.completed += done
        for tid, k, err in errors:
            # a job that died before recording its own failure (timeout, crash) is recorded here,
            # so that every round counts one attempt per unfinished unit and the loop ends
            if not store.manifest.is_done("dft", tid, k) and _attempts(store, tid, k) == before[(tid, k)]:
                store.manifest.record_failure("dft", tid, k, err)


def _attempts(store, target_id: str, k: int) -> int:
    for f in store.manifest.failures("dft", target_id):
        if int(f["unit"]) == k:
            return int(f.get("attempts", 0))
    return 0
