"""What works on this machine: the checks behind ``dosmatgen doctor``.

Each check returns a :class:`Check` with a status:

* ``ok``: the component works (weights load, a setup file is found, an import succeeds in a subprocess);
* ``missing``: an optional component is not installed or has no weights here (with what to do about it);
* ``error``: it is installed but fails (the message says how).

Only the core (torch, the bundled dataset, checkpoints and targets) is required; everything else is optional.
The orchestration frameworks (Ray, Dask, submitit, mpi4py) are probed in a subprocess, so this library module never
imports them. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

OK, MISSING, ERROR = "ok", "missing", "error"


@dataclass(frozen=True)
class Check:
    """One component: ``name``, ``status`` (ok / missing / error), ``detail`` (versions, paths, the fix), and
    whether the core needs it (``required``)."""

    name: str
    status: str
    detail: str
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _guard(name: str, required: bool, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a diagnostic reports every failure instead of raising
        return Check(name, ERROR, f"{type(exc).__name__}: {exc}", required)


def _probe(code: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Run ``code`` in a fresh interpreter; (succeeded, last line of its output or error)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    ok = proc.returncode == 0
    text = ((proc.stdout.strip() or proc.stderr.strip()) if ok else (proc.stderr.strip() or proc.stdout.strip())).splitlines()
    if not ok and not text:
        return False, f"exit code {proc.returncode} with no output"
    return ok, (text[-1] if text else "")


# ------------------------------------------------------------------------------------------------- core
def check_torch() -> Check:
    import torch

    gpu = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no GPU (CPU only)"
    return Check("torch", OK, f"torch {torch.__version__}; {gpu}; {torch.get_num_threads()} threads", True)


def check_bundled() -> Check:
    from dosmatgen.checkpoint_paths import bundled_checkpoints, resolve_checkpoint
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.targets import list_targets

    store = DatasetStore.open(bundled_dataset_path())
    names = bundled_checkpoints()
    sizes = [f"{n} ({resolve_checkpoint('bundled:' + n).stat().st_size / 2**20:.1f} MB)" for n in names]
    targets = list_targets()
    return Check("bundled data and models", OK,
                 f"dataset {bundled_dataset_path().name} ({store.num_structures} structures); checkpoints "
                 f"{', '.join(sizes)}; targets {', '.join(targets)}", True)


# ---------------------------------------------------------------------------------------- force fields
def check_chgnet() -> Check:
    if _version("chgnet") is None:
        return Check("CHGNet (default MLFF)", MISSING, "pip install 'dosmatgen[mlff]'")
    from dosmatgen.relax.mlff import get_mlff

    mlff = get_mlff("chgnet")
    return Check("CHGNet (default MLFF)", OK, f"{mlff.version}; weights from the chgnet wheel (offline)")


def check_sevenn() -> Check:
    if _version("sevenn") is None:
        return Check("SevenNet", MISSING, "optional: pip install 'dosmatgen[sevenn]'")
    from dosmatgen.relax.mlff_sevenn import DEFAULT_SEVENN_MODEL, _bundled_in_wheel

    if not _bundled_in_wheel(DEFAULT_SEVENN_MODEL):
        return Check("SevenNet", MISSING, f"sevenn {_version('sevenn')} installed, but {DEFAULT_SEVENN_MODEL} weights not found")
    return Check("SevenNet", OK, f"sevenn {_version('sevenn')}; {DEFAULT_SEVENN_MODEL} weights inside the wheel (offline)")


def check_orb(weights: str | os.PathLike | None = None) -> Check:
    if _version("orb-models") is None:
        return Check("Orb (paper's MLFF)", MISSING, "pip install 'dosmatgen[mlff]'")
    version = f"orb-models {_version('orb-models')}"
    if weights is None:
        return Check("Orb (paper's MLFF)", MISSING,
                     f"{version} installed; no weights on this machine unless you give them: download an Orb-v2 "
                     "checkpoint where there is network, then --mlff orb --mlff-weights PATH "
                     "(check it with dosmatgen doctor --orb-weights PATH)")
    from dosmatgen.relax.mlff import get_mlff

    mlff = get_mlff("orb", weights_path=weights)
    return Check("Orb (paper's MLFF)", OK, f"{mlff.version}; weights {weights} load")


# ------------------------------------------------------------------------------------------------- DFT
def check_gpaw() -> Check:
    if _version("gpaw") is None:
        return Check("GPAW (local DFT)", MISSING, "optional: apt-get install libxc-dev libopenblas-dev, then pip install 'dosmatgen[dft]'")
    from dosmatgen.dft.gpaw_engine import prepare_serial_gpaw

    prepare_serial_gpaw()  # gpaw.setup_data loads gpaw.mpi, which refuses to start inside an MPI task
    import gpaw
    from gpaw.setup_data import search_for_file

    path = Path(search_for_file("Si.PBE")[0])
    # `import gpaw` is lazy: only a calculation loads the compiled extension (libxc, BLAS), so run a tiny one
    ok, out = _probe(GPAW_PROBE)
    if not ok:
        return Check("GPAW (local DFT)", ERROR, f"gpaw {gpaw.__version__} installed, but a test calculation failed: {out}")
    return Check("GPAW (local DFT)", OK, f"gpaw {gpaw.__version__}; PAW setups in {path.parent}; test SCF {out}")


#: a PBE LCAO SCF of H2 (about 3 s here, start-up included), in a fresh interpreter so a crash of the compiled extension is reported, not fatal
GPAW_PROBE = """
from dosmatgen.dft.gpaw_engine import prepare_serial_gpaw
prepare_serial_gpaw()
import gpaw.cgpaw
from ase import Atoms
from gpaw import GPAW
atoms = Atoms("H2", positions=[(0, 0, 0), (0, 0, 0.74)], cell=[3, 3, 3.5], pbc=True)
atoms.calc = GPAW(mode="lcao", basis="sz(dzp)", h=0.3, xc="PBE", kpts=(1, 1, 1), txt=None)
print(f"ok (H2 energy {atoms.get_potential_energy():.3f} eV)")
"""


def check_vasp() -> Check:
    exe = shutil.which("vasp_std")
    potcars = os.environ.get("PMG_VASP_PSP_DIR") or os.environ.get("VASP_PSP_DIR")
    if exe is None:
        return Check("VASP (HPC DFT)", MISSING, "vasp_std not on PATH (expected on HPC: module load vasp); inputs can still be "
                     "written, with POTCAR.spec when no POTCARs are configured")
    return Check("VASP (HPC DFT)", OK, f"{exe}; POTCARs: {potcars or 'not configured (PMG_VASP_PSP_DIR)'}")


# --------------------------------------------------------------------------------------- orchestration
def check_ray() -> Check:
    if _version("ray") is None:
        return Check("Ray (+ dashboard)", MISSING, "pip install 'dosmatgen[cluster]'")
    ok, out = _probe("import ray, ray.dashboard.head, aiohttp; print('dashboard modules present')")
    if not ok:
        return Check("Ray (+ dashboard)", ERROR, f"ray {_version('ray')}: dashboard modules do not import ({out}); "
                     "pip install 'ray[default]'")
    return Check("Ray (+ dashboard)", OK, f"ray {_version('ray')}; dashboard modules present; the screen binds the dashboard "
                 "to 127.0.0.1 (reach it with ssh -L 8265:127.0.0.1:8265)")


def check_dask() -> Check:
    if _version("distributed") is None:
        return Check("Dask distributed", MISSING, "pip install 'dosmatgen[cluster]'")
    jq = _version("dask-jobqueue")
    return Check("Dask distributed", OK, f"dask {_version('dask')}, distributed {_version('distributed')}, "
                 f"dask-jobqueue {jq or 'not installed'}")


def check_submitit() -> Check:
    if _version("submitit") is None:
        return Check("submitit", MISSING, "pip install 'dosmatgen[cluster]'")
    sbatch = shutil.which("sbatch")
    return Check("submitit", OK, f"submitit {_version('submitit')}; Slurm: {sbatch or 'no sbatch here (local executor)'}")


def check_mpi4py() -> Check:
    if _version("mpi4py") is None:
        return Check("mpi4py", MISSING, "optional: apt-get install libopenmpi-dev openmpi-bin, then pip install mpi4py")
    ok, out = _probe("from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])")
    if not ok:
        return Check("mpi4py", ERROR, f"mpi4py {_version('mpi4py')} does not load its MPI library: {out}")
    launcher = shutil.which("mpirun") or shutil.which("srun")
    return Check("mpi4py", OK, f"mpi4py {_version('mpi4py')}; {out}; launcher {launcher or 'none on PATH'}")


def run_checks(orb_weights: str | os.PathLike | None = None) -> list[Check]:
    """Every check, in report order."""
    checks: list[tuple[str, bool, Callable[[], Check]]] = [
        ("torch", True, check_torch),
        ("bundled data and models", True, check_bundled),
        ("CHGNet (default MLFF)", False, check_chgnet),
        ("SevenNet", False, check_sevenn),
        ("Orb (paper's MLFF)", False, lambda: check_orb(orb_weights)),
        ("GPAW (local DFT)", False, check_gpaw),
        ("VASP (HPC DFT)", False, check_vasp),
        ("Ray (+ dashboard)", False, check_ray),
        ("Dask distributed", False, check_dask),
        ("submitit", False, check_submitit),
        ("mpi4py", False, check_mpi4py),
    ]
    return [_guard(name, required, fn) for name, required, fn in checks]
