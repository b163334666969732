"""GPAW engine: PBE plane-wave DFT and site/l-projected DOS with exactly the settings of dos-gpaw-v1.

Settings (see ``GPAWEngine.settings()``, stored in every record):

* PBE, plane waves with a 350 eV cut-off, non-spin-polarized (``spinpol=False``);
* Γ-centred Monkhorst–Pack grid from a k-point density of 3.0 Å⁻¹ (ASE's ``kpts={"density": 3.0, "gamma": True}``);
* Fermi–Dirac smearing 0.05 eV; GPAW's default symmetry (point group and time reversal) and SCF defaults;
* the cell is first snapped to its symmetrized standard primitive cell (spglib, symprec 0.05) where that keeps
  the atom count and volume (:mod:`dosmatgen.dft.standardize`);
* DOS from ``gpaw.dos.DOSCalculator.from_calculator(calc)`` on 401 energies from −10 to +10 eV (step 0.05 eV)
  relative to E_F, Gaussian width 0.1 eV: ``raw_dos`` for the total DOS of the cell and
  ``raw_pdos(E, a, l)`` for each site ``a`` and ``l`` = s, p, d (states/eV).

GPAW is GPL-licensed and optional (``pip install dosmatgen[dft]``, which needs Debian ``libxc-dev`` and
``libopenblas-dev`` to build); it is imported only inside :meth:`GPAWEngine.compute_dos`.
Threads: ``GPAWEngine(threads=n)`` caps the BLAS/OpenMP thread pools (threadpoolctl, part of the ``dft`` extra)
during the calculation; by default the cap is ``OMP_NUM_THREADS`` when set, else 1. On a busy machine uncapped
OpenBLAS threads make a 3 s calculation take minutes. The batch driver also sets the environment of its workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTCalculationError, DFTEngine, EngineUnavailableError
from dosmatgen.dft.standardize import DEFAULT_SYMPREC, standardize_crystal
from dosmatgen.dos.grid import GPAW_V1_GRID, EnergyGrid
from dosmatgen.dos.record import SPD_CHANNELS, DOSRecord
from dosmatgen.errors import InvalidRecordError

INSTALL_HINT = (
    "GPAW is not installed. It is an optional, GPL-licensed extra: on Debian/Ubuntu run "
    "'apt-get install libxc-dev libopenblas-dev' then 'pip install \"dosmatgen[dft]\"' (gpaw and gpaw-data from PyPI)"
)

log = logging.getLogger(__name__)

#: name of the GPAW text log written into each structure's work directory
LOG_NAME = "gpaw.txt"


#: GPAW's own default SCF iteration limit
DEFAULT_MAXITER = 333


@dataclass(frozen=True)
class GPAWSettings:
    """The physical settings; the defaults are those of dos-gpaw-v1."""

    xc: str = "PBE"
    ecut_ev: float = 350.0
    kpt_density: float = 3.0  # Å⁻¹, ASE convention
    smearing_ev: float = 0.05  # Fermi–Dirac width
    dos_width_ev: float = 0.1  # Gaussian width of the DOS
    symprec: float = DEFAULT_SYMPREC  # spglib tolerance for snapping, Å
    standardize: bool = True
    grid_emin: float = GPAW_V1_GRID.emin
    grid_emax: float = GPAW_V1_GRID.emax
    grid_n: int = GPAW_V1_GRID.n
    #: SCF iteration limit (GPAW's default); a calculation that hits it fails as ``not_converged``
    maxiter: int = DEFAULT_MAXITER

    @property
    def grid(self) -> EnergyGrid:
        return EnergyGrid(self.grid_emin, self.grid_emax, self.grid_n)


def gpaw_version() -> str | None:
    """Installed GPAW version, or None (does not import GPAW's calculators)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gpaw")
    except PackageNotFoundError:
        return None


#: the variables by which GPAW 26 (``gpaw._broadcast_imports``) decides that an MPI launcher started the process
MPI_LAUNCHER_VARIABLES = ("PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "I_MPI_MPIRUN")


def prepare_serial_gpaw() -> list[str]:
    """This engine runs GPAW in one process (threads, no MPI). Inside an MPI task (a Slurm ``srun`` step, as
    submitit's Slurm executor starts jobs, ``mpiexec``, or after an in-process ``MPI_Init`` by mpi4py, which
    exports ``OMPI_COMM_WORLD_SIZE``) GPAW's serial backend refuses to start ("GPAW appears to be running inside
    MPI launcher"). Drop those variables before GPAW's MPI module loads, unless the user chose a backend with
    ``GPAW_MPI_BACKEND``; returns the names dropped."""
    if "GPAW_MPI_BACKEND" in os.environ or "gpaw.mpi" in sys.modules:
        return []
    dropped = [v for v in MPI_LAUNCHER_VARIABLES if v in os.environ]
    for v in dropped:
        del os.environ[v]
    if dropped:
        log.info("running GPAW serially inside an MPI task: dropped %s from the environment", ", ".join(dropped))
    return dropped


def _full_bands_hint(calc) -> str:
    """Why GPAW found no Fermi level when the cause is that every band is occupied ('' when it is not)."""
    try:
        bands, electrons = int(calc.get_number_of_bands()), float(calc.get_number_of_electrons())
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    if 2 * bands > electrons + 1e-6:
        return ""
    return (f": all {bands} bands are occupied by the {electrons:g} valence electrons (GPAW's default band count "
            f"for this cell leaves no empty band: a closed shell such as Ne, or elemental Ca, Sr, Ba)")


class GPAWEngine(DFTEngine):
    """Site- and l-projected DOS from GPAW with the dos-gpaw-v1 settings (override any field of
    :class:`GPAWSettings` by keyword, e.g. ``GPAWEngine(ecut_ev=400)``)."""

    name = "gpaw"

    def __init__(self, threads: int | None = None, **settings: Any):
        self.threads = threads
        self.params = GPAWSettings(**settings)

    def config(self) -> dict[str, Any]:
        return {"threads": self.threads, **asdict(self.params)}

    def thread_count(self) -> int:
        """BLAS/OpenMP threads used by a calculation: ``threads``, else ``OMP_NUM_THREADS``, else 1."""
        if self.threads is not None:
            return max(1, int(self.threads))
        try:
            return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
        except ValueError:
            return 1

    def settings(self) -> dict[str, Any]:
        p = self.params
        # the first seven keys are exactly dos-gpaw-v1's `settings`; the rest make the record self-describing
        return {
            "code": "GPAW",
            "xc": p.xc,
            "mode": f"PW({float(p.ecut_ev)})",
            "kpts": {"density": float(p.kpt_density), "gamma": True},
            "occupations": f"FermiDirac({float(p.smearing_ev)})",
            "spin": "non-polarized",
            "dos_width": float(p.dos_width_ev),
            "symmetry": "point-group",
            "standardize_symprec": float(p.symprec) if p.standardize else None,
            "energy_grid": p.grid.to_dict(),
            "gpaw_version": gpaw_version(),
            # a convergence control, not physics: recorded only when changed, so records stay comparable
            **({"maxiter": int(p.maxiter)} if p.maxiter != DEFAULT_MAXITER else {}),
        }

    def check_available(self) -> None:
        if gpaw_version() is None:
            raise EngineUnavailableError(INSTALL_HINT)
        prepare_serial_gpaw()  # before GPAW's first import; compute_dos always passes through here
        try:
            import gpaw  # noqa: F401
        except Exception as err:  # broken build (e.g. missing libxc at run time)
            raise EngineUnavailableError(f"GPAW is installed but cannot be imported ({err}). {INSTALL_HINT}") from err

    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        self.check_available()
        p = self.params
        try:
            crystal.validate_geometry()
        except InvalidRecordError as err:
            raise DFTCalculationError("invalid_input", err.problem) from None
        computed, snapped = standardize_crystal(crystal, p.symprec) if p.standardize else (crystal, False)
        log_path = Path(workdir) / LOG_NAME

        with _thread_limit(self.thread_count()):
            return self._run(computed, snapped, crystal, id, log_path)

    def _run(self, computed: Crystal, snapped: bool, crystal: Crystal, id: str, log_path: Path) -> DOSRecord:
        from gpaw import GPAW, PW, FermiDirac, KohnShamConvergenceError
        from gpaw.dos import DOSCalculator

        p = self.params
        atoms = computed.to_ase()
        start = time.perf_counter()
        calc = GPAW(
            mode=PW(p.ecut_ev),
            xc=p.xc,
            kpts={"density": p.kpt_density, "gamma": True},
            occupations=FermiDirac(p.smearing_ev),
            spinpol=False,
            maxiter=int(p.maxiter),
            txt=str(log_path),
        )
        atoms.calc = calc
        try:
            energy = float(atoms.get_potential_energy())
        except KohnShamConvergenceError as err:
            raise DFTCalculationError("not_converged", f"SCF did not converge: {err}") from None
        except Exception as err:
            raise DFTCalculationError("engine_error", f"{type(err).__name__}: {err}") from None

        efermi = float(calc.get_fermi_level())
        if not np.isfinite(efermi):
            raise DFTCalculationError("no_fermi_level", f"GPAW returned efermi={efermi}{_full_bands_hint(calc)}")
        energies = p.grid.energies
        dos = DOSCalculator.from_calculator(calc)  # eigenvalues shifted so that E_F = 0
        total = np.asarray(dos.raw_dos(energies, width=p.dos_width_ev), dtype=np.float64)
        site = np.array(
            [[dos.raw_pdos(energies, a, l, width=p.dos_width_ev) for l in range(len(SPD_CHANNELS))] for a in range(len(atoms))],
            dtype=np.float64,
        )
        seconds = time.perf_counter() - start
        if not np.all(np.isfinite(total)) or total.sum() <= 0.0:
            raise DFTCalculationError("no_fermi_level", "GPAW gave an empty or non-finite DOS in the window")

        record = DOSRecord(
            id=id,
            source=str(crystal.metadata.get("source", "gpaw-computed")),
            crystal=computed,
            energies=energies,
            site_dos=site,
            channels=SPD_CHANNELS,
            total_dos=total,
            efermi=efermi,
            energy=energy,
            metadata={
                "n_electrons": float(calc.get_number_of_electrons()),
                "n_ibz_kpoints": int(len(calc.get_ibz_k_points())),
                "seconds": float(seconds),
                "settings": self.settings(),
                "standardized": bool(snapped),
                "log": str(log_path),
                "threads": self.thread_count(),
            },
        )
        try:
            return record.validate(check_geometry=False)
        except InvalidRecordError as err:
            raise DFTCalculationError("engine_error", f"GPAW output failed validation: {err.problem}") from None


def _thread_limit(n: int):
    """Context manager capping BLAS/OpenMP thread pools to ``n`` (no-op with a warning without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is not installed: BLAS thread pools are not capped (pip install threadpoolctl)")
        return contextlib.nullcontext()
    return threadpool_limits(limits=n)
