"""The DFT unit of work: one selected candidate (target, slot k) -> its site DOS in the run store.

Submitted by :mod:`dosmatgen_cluster.submitit_dft` as one element of a submitit job array. On Slurm the job runs as ONE
task (``tasks_per_node=1``) and, when ``srun_args`` is given (e.g. ``["srun", "-n", "4", "--cpu-bind=cores"]``),
starts the calculation itself through an inner ``srun`` of ``python -m dosmatgen_jobs.dft_job`` (the MPI-parallel DFT
step); locally it computes in-process.

VASP (``dft.options.name: vasp``) runs its own parallel step: the engine starts ``launch_cmd`` in the calculation
folder, and on Slurm this module supplies ``srun --overlap -n <CPUs/2> vasp_std`` when the config gives none (:func:`engine_options`); use
it without ``srun_args``.

The job is :class:`submitit.helpers.Checkpointable`: on timeout or preemption submitit requeues it with the same
arguments, and because completed units are skipped via the run-store manifest, a requeued job never
duplicates work. A failure is recorded under ``failures/dft/<target>/<k>.json`` and re-raised so that the
job shows as failed; the driver retries it up to ``dft.max_attempts`` times.

CLI (used by the inner srun)::

    python -m dosmatgen_jobs.dft_job STORE_ROOT TARGET K LOADER OPTIONS_JSON WORKDIR
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from submitit.helpers import Checkpointable


#: how VASP is started inside a Slurm job when the config gives no ``launch_cmd`` (the library never calls srun):
#: ``srun vasp_std`` with ``--overlap`` (the submitit task already holds the job's CPUs, so a plain inner srun would
#: wait for them forever) and one MPI rank per 2 CPUs of the job (a bare srun inherits SLURM_NTASKS=1)
SLURM_VASP_LAUNCH = ["srun", "--overlap", "vasp_std"]


def slurm_vasp_launch(environ: Any = None) -> list[str]:
    """The default VASP launch command for this Slurm job (see :data:`SLURM_VASP_LAUNCH`)."""
    env = os.environ if environ is None else environ
    try:
        cpus = int(env.get("SLURM_CPUS_PER_TASK", "0"))
    except ValueError:
        cpus = 0
    if cpus < 2:
        return list(SLURM_VASP_LAUNCH)
    return ["srun", "--overlap", f"--ntasks={cpus // 2}", "--cpus-per-task=2", "--cpu-bind=cores", "vasp_std"]


def shared_node_vasp_launch(units: int, environ: Any = None) -> list[str]:
    """VASP launch for one of ``units`` calculations sharing this job's node: ``cpus/2/units`` ranks x 2 CPUs,
    ``--exact`` so that the concurrent steps get disjoint cores. The job must run its Python in the batch step
    (``use_srun=False``, :class:`DFTGroupJob`), so that no step already holds the CPUs (no ``--overlap``)."""
    env = os.environ if environ is None else environ
    cpus = int(env.get("SLURM_CPUS_PER_TASK") or env.get("SLURM_CPUS_ON_NODE") or 0)
    ranks = cpus // 2 // max(1, int(units))
    if ranks < 1:
        raise RuntimeError(f"{units} VASP units cannot share {cpus} CPUs (2 per rank)")
    return ["srun", "--exact", "--nodes=1", f"--ntasks={ranks}", "--cpus-per-task=2", "--cpu-bind=cores", "vasp_std"]


def engine_options(options: dict[str, Any], environ: Any = None) -> dict[str, Any]:
    """The engine options for this job: on Slurm (``SLURM_JOB_ID`` set) a VASP engine without a ``launch_cmd``
    gets :func:`slurm_vasp_launch`; everything else is passed through unchanged."""
    env = os.environ if environ is None else environ
    out = dict(options)
    if out.get("name") == "vasp" and not out.get("launch_cmd") and env.get("SLURM_JOB_ID"):
        out["launch_cmd"] = slurm_vasp_launch(env)
    return out


def run_dft_unit(store_root: str, target_id: str, k: int, loader: str, options: dict[str, Any], workdir: str,
                 write: bool = True) -> dict[str, Any]:
    """Compute one slot in this process (skipped when already complete); ``write=False`` on MPI ranks > 0."""
    from dosmatgen.runstore import RunStore
    from dosmatgen.screen.stages import dft_slot, resolve_callable

    store = RunStore.open(store_root, mode="r+")
    if store.manifest.is_done("dft", target_id, k):
        return {"target": target_id, "k": k, "skipped": True}
    engine = resolve_callable(loader)(**engine_options(options))
    info = dft_slot(store, target_id, k, engine, os.path.join(workdir, target_id, str(k)), write=write)
    return {"target": target_id, "k": k, **info}


class DFTJob(Checkpointable):
    """Callable submitted by submitit: ``DFTJob(...)(target_id, k)``."""

    def __init__(self, store_root: str, loader: str, options: dict[str, Any], workdir: str,
                 srun_args: list[str] | None = None) -> None:
        self.store_root = str(store_root)
        self.loader = loader
        self.options = dict(options)
        self.workdir = str(workdir)
        self.srun_args = list(srun_args or [])

    def __call__(self, target_id: str, k: int) -> dict[str, Any]:
        if self.srun_args and os.environ.get("SLURM_JOB_ID"):
            cmd = [*self.srun_args, sys.executable, "-m", "dosmatgen_jobs.dft_job", self.store_root, target_id, str(k),
                   self.loader, json.dumps(self.options), self.workdir]
            proc = subprocess.run(cmd, check=False)
            from dosmatgen.runstore import RunStore

            if not RunStore.open(self.store_root, mode="r").manifest.is_done("dft", target_id, k):
                raise RuntimeError(f"inner srun for {target_id}/{k} exited with {proc.returncode} without a result")
            return {"target": target_id, "k": k, "srun": True}
        return run_dft_unit(self.store_root, target_id, int(k), self.loader, self.options, self.workdir)


class DFTGroupJob(Checkpointable):
    """Several small DFT units in ONE job, run concurrently on its node (``dft.submitit.units_per_job``).

    ``DFTGroupJob(...)([[target, k], ...])``: one thread per unit, each computing in this process with its own
    VASP launch (:func:`shared_node_vasp_launch`: the node's CPUs split evenly) unless the config gives a
    ``launch_cmd``. Units already done are skipped; a failed unit is recorded by the run store and the job then
    raises, naming every failed unit, so the driver retries them."""

    def __init__(self, store_root: str, loader: str, options: dict[str, Any], workdir: str) -> None:
        self.store_root = str(store_root)
        self.loader = loader
        self.options = dict(options)
        self.workdir = str(workdir)

    def unit_options(self, n_units: int, environ: Any = None) -> dict[str, Any]:
        env = os.environ if environ is None else environ
        out = dict(self.options)
        if out.get("name") == "vasp" and not out.get("launch_cmd") and env.get("SLURM_JOB_ID"):
            out["launch_cmd"] = shared_node_vasp_launch(n_units, env)
        return out

    def __call__(self, units: list) -> list[dict[str, Any]]:
        from concurrent.futures import ThreadPoolExecutor

        opts = self.unit_options(len(units))
        with ThreadPoolExecutor(max_workers=max(1, len(units))) as pool:
            futures = [(tid, int(k), pool.submit(run_dft_unit, self.store_root, tid, int(k), self.loader, opts, self.workdir))
                       for tid, k in units]
        results, errors = [], []
        for tid, k, fut in futures:
            try:
                results.append(fut.result())
            except Exception as exc:  # recorded in the run store by dft_slot
                errors.append(f"{tid}/{k}: {type(exc).__name__}: {exc}")
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(units)} DFT units failed: " + "; ".join(errors))
        return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    store_root, target, k, loader, options, workdir = argv
    rank = int(os.environ.get("SLURM_PROCID", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    # every rank computes (an MPI-parallel engine needs them all); only rank 0 writes the store
    result = run_dft_unit(store_root, target, int(k), loader, json.loads(options), workdir, write=rank == 0)
    if rank == 0:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
