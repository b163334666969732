"""VASP engine: pymatgen's Materials Project input sets, a launch command given by the caller, vasprun.xml parsed
into the same site/l-projected :class:`~dosmatgen.dos.record.DOSRecord` as the GPAW engine.

Two steps, each in its own folder under the structure's work directory:

1. ``static/``: :class:`pymatgen.io.vasp.sets.MPStaticSet` (NSW = 0, ISMEAR = -5, LORBIT = 11, LCHARG = True,
   ENCUT = 520 eV, PBE) — the self-consistent charge density;
2. ``nscf/``: :meth:`MPNonSCFSet.from_prev_calc(static, mode="uniform", nedos=3001) <pymatgen.io.vasp.sets.MPNonSCFSet>`
   (ICHARG = 11, NEDOS = 3001, LORBIT = 11, a denser uniform k-mesh, CHGCAR copied from ``static/``) — the DOS.

POTCARs: when pymatgen knows a POTCAR folder (``PMG_VASP_PSP_DIR`` in the environment or in ``~/.config/.pmgrc.yaml``)
the inputs include ``POTCAR``; otherwise ``POTCAR.spec`` (one POTCAR symbol per line) is written instead
(``write_input(dir, potcar_spec=True)``) and the run folder must get its POTCAR some other way.

The launch command (e.g. ``["srun", "vasp_std"]``, supplied by ``jobs/`` on Slurm) is a parameter. The library
never starts VASP on its own: with ``launch_cmd=None`` (the default) the engine writes the inputs of the next step
and raises :class:`~dosmatgen.dft.engine.DFTCalculationError` of kind ``pending``. A step whose ``vasprun.xml`` is
already there and electronically converged (run by the engine earlier, or by the user or a batch job since) is
not run again, so "write inputs, run VASP elsewhere, call again" works step by step. The command runs with the
step folder as working directory, its stdout and stderr going to ``<step>/vasp.log`` (kept).

Failures (:class:`DFTCalculationError` kinds): ``engine_error`` — the command exited non-zero, or left no readable
vasprun.xml, or the static run left no CHGCAR; ``not_converged`` — vasprun.xml says the electronic loop hit NELM;
``no_fermi_level`` — no E_F or no DOS. The message names the log file.

Result: the NSCF ``vasprun.xml`` read by :func:`dosmatgen.data.sources.vasprun.record_from_vasprun` (s/p/d per site
summed over m and spins, total DOS summed over spins, energies relative to the NSCF E_F), then

* Gaussian-smoothed with standard deviation ``dos_sigma_ev`` (default 0.1/√2 ≈ 0.0707 eV: the same broadening
  as GPAW's ``width=0.1`` Gaussians ``exp(-(E/0.1)^2)`` of the bundled dataset; the tetrahedron DOS of
  ISMEAR = -5 has none of its own) and resampled linearly onto the dataset grid (default 401 points,
  -10..10 eV relative to E_F; zero where VASP's DOS window ends), so target, surrogate and DFT compare directly;
* small negative values of the tetrahedron method (after smoothing) are set to 0 (``metadata["clipped_min"]``
  records the most negative value removed);
* sites are put back into the order of the input crystal (VASP needs species grouped; the engine sorts the sites
  by electronegativity for VASP and undoes that permutation), so site ``i`` of the record is site ``i`` of the
  candidate. The record's crystal is VASP's final structure in that order (equal to the input for NSW = 0).

``energy`` is the static run's final energy (eV, VASP's reference; the NSCF energy is not variational).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTCalculationError, DFTEngine, EngineUnavailableError
from dosmatgen.dos.grid import GPAW_V1_GRID, EnergyGrid
from dosmatgen.dos.record import SPD_CHANNELS, DOSRecord
from dosmatgen.dos.smoothing import resample
from dosmatgen.errors import InvalidRecordError

log = logging.getLogger(__name__)

STATIC_DIR = "static"
NSCF_DIR = "nscf"
LOG_NAME = "vasp.log"
VASPRUN = "vasprun.xml"
#: NEDOS of the NSCF step (FACTS §8: MPNonSCFSet(mode="uniform", nedos=3001))
DEFAULT_NEDOS = 3001
#: Gaussian standard deviation (eV) matching GPAW's width=0.1 eV Gaussians exp(-(E/w)^2)
DEFAULT_DOS_SIGMA_EV = 0.1 / np.sqrt(2.0)


def potcar_dir() -> str | None:
    """The POTCAR folder pymatgen would use (``PMG_VASP_PSP_DIR`` from the environment or .pmgrc.yaml), or None."""
    value = os.environ.get("PMG_VASP_PSP_DIR")
    if not value:
        try:
            from pymatgen.core import SETTINGS

            value = SETTINGS.get("PMG_VASP_PSP_DIR")
        except ImportError:  # pragma: no cover - pymatgen is a core dependency
            value = None
    return str(value) if value and Path(value).is_dir() else None


def vasp_site_order(crystal: Crystal) -> np.ndarray:
    """(n,) permutation ``p`` such that ``crystal`` sites ``p`` are grouped by species as VASP needs
    (stable sort by Pauling electronegativity, then Z; elements without one go last)."""
    from pymatgen.core import Element

    keys = []
    for z in crystal.atomic_numbers:
        x = Element.from_Z(int(z)).X
        keys.append((float(x) if np.isfinite(x) else np.inf, int(z)))
    return np.array(sorted(range(crystal.num_atoms), key=lambda i: keys[i]), dtype=np.int64)


def _log_tail(path: Path, n: int = 5) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:]) or "(empty log)"


class VASPEngine(DFTEngine):
    """VASP through pymatgen input sets; see the module docstring.

    Args:
        launch_cmd: the command that runs VASP in the current directory, as a list (``["srun", "vasp_std"]``) or a
            shell-style string (``"srun -n 4 vasp_std"``). None (default): write inputs only, report ``pending``.
        nedos: NEDOS of the NSCF step.
        potcar_spec: True writes ``POTCAR.spec`` instead of ``POTCAR``; None (default) decides by whether POTCARs
            are configured (:func:`potcar_dir`).
        user_incar_settings: INCAR keys added to both steps (e.g. ``{"NCORE": 4, "KPAR": 2}`` on a cluster).
        dos_sigma_ev: Gaussian smoothing (standard deviation, eV) applied before resampling; 0 for none.
        grid_emin, grid_emax, grid_n: the output energy grid (eV relative to E_F); default the dataset's.
    """

    name = "vasp"

    def __init__(
        self,
        launch_cmd: Sequence[str] | str | None = None,
        nedos: int = DEFAULT_NEDOS,
        potcar_spec: bool | None = None,
        user_incar_settings: dict[str, Any] | None = None,
        dos_sigma_ev: float = DEFAULT_DOS_SIGMA_EV,
        grid_emin: float = GPAW_V1_GRID.emin,
        grid_emax: float = GPAW_V1_GRID.emax,
        grid_n: int = GPAW_V1_GRID.n,
    ) -> None:
        if isinstance(launch_cmd, str):
            launch_cmd = shlex.split(launch_cmd)
        self.launch_cmd = [str(a) for a in launch_cmd] if launch_cmd else None
        self.nedos = int(nedos)
        self.potcar_spec = potcar_spec
        self.user_incar_settings = dict(user_incar_settings or {})
        self.dos_sigma_ev = float(dos_sigma_ev)
        self.grid = EnergyGrid(float(grid_emin), float(grid_emax), int(grid_n))

    # ------------------------------------------------------------------ interface
    def config(self) -> dict[str, Any]:
        return {
            "launch_cmd": self.launch_cmd,
            "nedos": self.nedos,
            "potcar_spec": self.potcar_spec,
            "user_incar_settings": self.user_incar_settings,
            "dos_sigma_ev": self.dos_sigma_ev,
            "grid_emin": self.grid.emin,
            "grid_emax": self.grid.emax,
            "grid_n": self.grid.n,
        }

    def uses_potcar_spec(self) -> bool:
        return self.potcar_spec if self.potcar_spec is not None else potcar_dir() is None

    def settings(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {
            "code": "VASP",
            "static": "pymatgen MPStaticSet",
            "nscf": f"pymatgen MPNonSCFSet.from_prev_calc(mode='uniform', nedos={self.nedos})",
            "lorbit": 11,
            "user_incar_settings": self.user_incar_settings,
            "potcar": "POTCAR.spec" if self.uses_potcar_spec() else "POTCAR",
            "dos_sigma_ev": self.dos_sigma_ev,
            "energy_grid": self.grid.to_dict(),
            "pymatgen_version": version("pymatgen"),
        }

    def check_available(self) -> None:
        if self.launch_cmd is None:
            return  # writing inputs needs only pymatgen
        if shutil.which(self.launch_cmd[0]) is None:
            raise EngineUnavailableError(
                f"VASP launch command {self.launch_cmd[0]!r} is not on PATH (launch command: {shlex.join(self.launch_cmd)}); "
                "load the VASP module or give the full path, or omit the launch command to only write inputs"
            )

    # ------------------------------------------------------------------ inputs
    def static_input_set(self, crystal: Crystal):
        """The MPStaticSet of ``crystal`` (sites in VASP order, see :func:`vasp_site_order`)."""
        from pymatgen.io.vasp.sets import MPStaticSet

        structure = crystal.to_pymatgen()
        order = vasp_site_order(crystal)
        structure = structure.__class__.from_sites([structure[int(i)] for i in order])
        return MPStaticSet(structure, user_incar_settings=self.user_incar_settings or None, sort_structure=False)

    def nscf_input_set(self, static_dir: Path):
        """``MPNonSCFSet.from_prev_calc(static_dir, mode="uniform", nedos=...)`` (needs vasprun.xml and OUTCAR)."""
        from pymatgen.io.vasp.sets import MPNonSCFSet

        return MPNonSCFSet.from_prev_calc(
            str(static_dir), mode="uniform", nedos=self.nedos, copy_chgcar=True, sort_structure=False,
            user_incar_settings=self.user_incar_settings or None,
        )  # fmt: skip

    def write_static_inputs(self, crystal: Crystal, static_dir: str | Path) -> Path:
        static_dir = Path(static_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POTCAR-availability warnings: handled by potcar_spec
            self.static_input_set(crystal).write_input(str(static_dir), potcar_spec=self.uses_potcar_spec())
        return static_dir

    def write_nscf_inputs(self, static_dir: str | Path, nscf_dir: str | Path) -> Path:
        nscf_dir = Path(nscf_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                input_set = self.nscf_input_set(Path(static_dir))
            except (ValueError, KeyError, OSError) as err:
                raise DFTCalculationError(
                    "engine_error", f"cannot build the NSCF inputs from {static_dir} ({type(err).__name__}: {err})"
                ) from None
            input_set.write_input(str(nscf_dir), potcar_spec=self.uses_potcar_spec())
        return nscf_dir

    # ------------------------------------------------------------------ steps
    @staticmethod
    def step_state(step_dir: Path) -> str:
        """``done`` (vasprun.xml parses, electronic loop converged), ``unconverged``, ``broken`` (unreadable) or ``absent``."""
        path = step_dir / VASPRUN
        if not path.is_file():
            return "absent"
        from pymatgen.io.vasp.outputs import Vasprun

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vr = Vasprun(str(path), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
        except Exception:  # noqa: BLE001 - any parse failure means "no usable result"
            return "broken"
        return "done" if vr.converged_electronic else "unconverged"

    def _launch(self, step_dir: Path) -> float:
        """Run the launch command in ``step_dir``; return its wall seconds. Raises DFTCalculationError on failure."""
        assert self.launch_cmd is not None
        log_path = step_dir / LOG_NAME
        start = time.perf_counter()
        with open(log_path, "w") as fh:
            fh.write(f"# {shlex.join(self.launch_cmd)}  (cwd {step_dir})\n")
            fh.flush()
            try:
                rc = subprocess.run(self.launch_cmd, cwd=step_dir, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, check=False).returncode  # fmt: skip
            except OSError as err:
                raise DFTCalculationError("engine_error", f"cannot start {self.launch_cmd[0]!r}: {err}; log {log_path}") from None
        seconds = time.perf_counter() - start
        if rc != 0:
            how = f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}"
            raise DFTCalculationError(
                "engine_error", f"VASP ({step_dir.name}) failed with {how}: {_log_tail(log_path)}; log {log_path}"
            )
        return seconds

    def _run_step(self, step: str, step_dir: Path, write_inputs) -> float:
        """Bring one step to ``done``: reuse a converged result, else write inputs and launch (or report pending)."""
        state = self.step_state(step_dir)
        if state == "done":
            return 0.0
        log_path = step_dir / LOG_NAME
        if self.launch_cmd is None:
            if state == "unconverged":
                raise DFTCalculationError("not_converged", f"VASP {step} electronic loop did not converge ({step_dir / VASPRUN})")
            write_inputs()
            raise DFTCalculationError(
                "pending", f"VASP {step} inputs written to {step_dir}; run VASP there (or give a launch command) and run again"
            )
        step_dir.mkdir(parents=True, exist_ok=True)
        (step_dir / VASPRUN).unlink(missing_ok=True)
        write_inputs()
        seconds = self._launch(step_dir)
        state = self.step_state(step_dir)
        if state == "absent":
            raise DFTCalculationError("engine_error", f"VASP {step} wrote no {VASPRUN}: {_log_tail(log_path)}; log {log_path}")
        if state == "broken":
            raise DFTCalculationError("engine_error", f"VASP {step} left an unreadable {VASPRUN}; log {log_path}")
        if state == "unconverged":
            raise DFTCalculationError("not_converged", f"VASP {step} electronic loop did not converge; log {log_path}")
        return seconds

    # ------------------------------------------------------------------ the calculation
    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        self.check_available()
        try:
            crystal.validate_geometry()
        except InvalidRecordError as err:
            raise DFTCalculationError("invalid_input", err.problem) from None
        work = Path(workdir)
        static_dir, nscf_dir = work / STATIC_DIR, work / NSCF_DIR
        static_dir.mkdir(parents=True, exist_ok=True)
        seconds = self._run_step(STATIC_DIR, static_dir, lambda: self.write_static_inputs(crystal, static_dir))

        def nscf_inputs() -> None:
            if self.launch_cmd is not None and not any(static_dir.glob("CHGCAR*")):
                raise DFTCalculationError("engine_error", f"the static run left no CHGCAR in {static_dir} (LCHARG = True expected)")
            self.write_nscf_inputs(static_dir, nscf_dir)

        seconds += self._run_step(NSCF_DIR, nscf_dir, nscf_inputs)
        return self.parse(crystal, id, static_dir, nscf_dir, seconds)

    def parse(self, crystal: Crystal, id: str, static_dir: Path, nscf_dir: Path, seconds: float = float("nan")) -> DOSRecord:
        """The record of a finished static + NSCF pair (see the module docstring)."""
        from pymatgen.io.vasp.outputs import Vasprun

        from dosmatgen.data.sources.vasprun import record_from_vasprun

        try:
            raw = record_from_vasprun(nscf_dir / VASPRUN, id, source=str(crystal.metadata.get("source", "vasp-computed")))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                static = Vasprun(str(static_dir / VASPRUN), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
                nscf = Vasprun(str(nscf_dir / VASPRUN), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
        except InvalidRecordError as err:
            kind = "no_fermi_level" if "Fermi" in err.problem or "dos" in err.problem.lower() else "engine_error"
            raise DFTCalculationError(kind, f"{err.problem} ({nscf_dir / VASPRUN})") from None
        except Exception as err:  # noqa: BLE001 - pymatgen raises many types on odd files
            raise DFTCalculationError("engine_error", f"cannot parse {nscf_dir / VASPRUN}: {type(err).__name__}: {err}") from None
        if raw.site_dos is None or raw.total_dos is None:
            raise DFTCalculationError("engine_error", f"{nscf_dir / VASPRUN} has no site-projected DOS (LORBIT = 11 expected)")

        order = vasp_site_order(crystal)
        if raw.crystal.num_atoms != crystal.num_atoms or not np.array_equal(raw.crystal.atomic_numbers, crystal.atomic_numbers[order]):
            raise DFTCalculationError(
                "engine_error", f"the structure in {nscf_dir / VASPRUN} ({raw.crystal.formula}, {raw.crystal.num_atoms} atoms) "
                f"is not the one submitted ({crystal.formula}, {crystal.num_atoms} atoms in VASP order)",
            )  # fmt: skip
        inverse = np.argsort(order)  # record site i <- VASP site inverse[i]
        sigma = self.dos_sigma_ev or None
        try:
            site = resample(raw.energies, raw.site_dos, self.grid, sigma)[inverse]
            total = resample(raw.energies, raw.total_dos, self.grid, sigma)
        except InvalidRecordError as err:
            raise DFTCalculationError("engine_error", f"cannot resample the VASP DOS: {err.problem}") from None
        clipped_min = float(min(site.min(), total.min(), 0.0))
        site, total = np.clip(site, 0.0, None), np.clip(total, 0.0, None)
        if total.sum() <= 0.0:
            raise DFTCalculationError("no_fermi_level", f"the VASP DOS is zero on [{self.grid.emin}, {self.grid.emax}] eV around E_F")

        final = raw.crystal
        computed = Crystal(final.atomic_numbers[inverse], final.frac_coords[inverse], final.lattice, dict(crystal.metadata))
        n_electrons = nscf.parameters.get("NELECT") if nscf.parameters else None
        record = DOSRecord(
            id=id,
            source=raw.source,
            crystal=computed,
            energies=self.grid.energies,
            site_dos=site,
            channels=SPD_CHANNELS,
            total_dos=total,
            efermi=float(raw.efermi),
            energy=float(static.final_energy),
            metadata={
                "n_electrons": float(n_electrons) if n_electrons is not None else float("nan"),
                "n_ibz_kpoints": int(len(nscf.actual_kpoints)),
                "seconds": float(seconds),
                "settings": self.settings(),
                "vasp_version": str(nscf.vasp_version),
                "spin_polarized": bool(raw.metadata.get("spin_polarized", False)),
                "clipped_min": clipped_min,
                "log": str(nscf_dir / LOG_NAME),
                "workdir": str(static_dir.parent),
            },
        )
        try:
            return record.validate(check_geometry=False)
        except InvalidRecordError as err:
            raise DFTCalculationError("engine_error", f"VASP output failed validation: {err.problem}") from None
