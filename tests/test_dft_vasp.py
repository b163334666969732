"""The VASP engine offline: pymatgen input writing (static and NSCF), parsing the hand-built vasprun.xml, the full
path with a fake launch command (tests/fake_vasp.py writes VASP-like outputs), failures and the pending workflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.data.sources.vasprun import record_from_vasprun
from dosmatgen.dft.compute import compute_dos_dataset, read_failures, record_path
from dosmatgen.dft.engine import DFTCalculationError, EngineUnavailableError
from dosmatgen.dft.record_file import read_record_npz
from dosmatgen.dft.vasp_engine import NSCF_DIR, STATIC_DIR, VASPEngine, vasp_site_order
from dosmatgen.dos.grid import GPAW_V1_GRID

TESTS = Path(__file__).resolve().parent
FIXTURE = TESTS / "data" / "vasprun" / "Si" / "vasprun.xml"
FAKE_VASP = TESTS / "fake_vasp.py"
EFERMI, E_TOTAL = 5.6, -10.84321  # of the hand-built fixture (tests/data/make_vasprun.py)


def silicon() -> Crystal:
    lat = 0.5 * 5.43 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    return Crystal(np.array([14, 14]), np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), lat)


def fake_cmd(mode: str = "ok") -> list[str]:
    return [sys.executable, str(FAKE_VASP), str(FIXTURE), mode]


def incar(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@pytest.fixture(autouse=True)
def no_potcars(monkeypatch):
    """Tests run without POTCARs, whatever the machine has configured."""
    monkeypatch.setattr("dosmatgen.dft.vasp_engine.potcar_dir", lambda: None)


def run_fake(step_dir: Path, mode: str = "ok") -> None:
    subprocess.run(fake_cmd(mode), cwd=step_dir, check=True, capture_output=True)


# ----------------------------------------------------------------------------------------- inputs
def test_static_inputs_mp_static_set_with_potcar_spec(tmp_path):
    engine = VASPEngine()  # no launch command: inputs only
    with pytest.raises(DFTCalculationError) as exc:
        engine.compute_dos(silicon(), "Si2", tmp_path)
    assert exc.value.kind == "pending" and str(tmp_path / STATIC_DIR) in exc.value.message
    static = tmp_path / STATIC_DIR
    tags = incar(static / "INCAR")
    assert (tags["LORBIT"], tags["NSW"], tags["ISMEAR"], tags["LCHARG"], tags["ENCUT"]) == ("11", "0", "-5", "True", "520.0")
    assert (static / "KPOINTS").read_text().splitlines()[2].strip().lower().startswith("gamma")
    assert (static / "POTCAR.spec").read_text().split() == ["Si"]  # MP's POTCAR choice for Si
    assert not (static / "POTCAR").exists() and not (tmp_path / NSCF_DIR).exists()


def test_species_are_grouped_for_vasp_and_potcar_spec_follows_poscar(tmp_path):
    # Cl Na Cl Na (interleaved): VASP needs species grouped; MP order is by electronegativity (Na 0.93 < Cl 3.16)
    lat = 5.6 * np.eye(3)
    frac = [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0]]
    crystal = Crystal(np.array([17, 11, 17, 11]), np.array(frac, dtype=float), lat)
    order = vasp_site_order(crystal)
    assert crystal.atomic_numbers[order].tolist() == [11, 11, 17, 17]
    VASPEngine().write_static_inputs(crystal, tmp_path)
    poscar = (tmp_path / "POSCAR").read_text().splitlines()
    assert poscar[5].split() == ["Na", "Cl"] and poscar[6].split() == ["2", "2"]
    assert (tmp_path / "POTCAR.spec").read_text().split() == ["Na_pv", "Cl"]


def test_potcar_spec_is_automatic_only_without_configured_potcars(monkeypatch, tmp_path):
    assert VASPEngine().uses_potcar_spec()
    monkeypatch.setattr("dosmatgen.dft.vasp_engine.potcar_dir", lambda: str(tmp_path))
    assert not VASPEngine().uses_potcar_spec()
    assert VASPEngine(potcar_spec=True).uses_potcar_spec()


def test_nscf_inputs_from_prev_calc_uniform(tmp_path):
    engine = VASPEngine()
    static, nscf = tmp_path / STATIC_DIR, tmp_path / NSCF_DIR
    engine.write_static_inputs(silicon(), static)
    run_fake(static)  # a finished static run: vasprun.xml, OUTCAR, CHGCAR
    engine.write_nscf_inputs(static, nscf)
    tags = incar(nscf / "INCAR")
    assert (tags["ICHARG"], tags["NEDOS"], tags["LORBIT"], tags["NSW"]) == ("11", "3001", "11", "0")
    assert tags["LCHARG"] == "False"
    assert (nscf / "CHGCAR").read_text() == (static / "CHGCAR").read_text()  # the charge density is carried over
    assert (nscf / "KPOINTS").is_file() and (nscf / "POTCAR.spec").read_text().split() == ["Si"]
    # a uniform Gamma-centred mesh (mode="uniform"), not a band-structure line path
    kpoints = (nscf / "KPOINTS").read_text().splitlines()
    assert kpoints[2].strip().lower().startswith("gamma") and len(kpoints[3].split()) == 3


def test_missing_launch_executable_is_unavailable():
    with pytest.raises(EngineUnavailableError, match="not on PATH"):
        VASPEngine(launch_cmd="no-such-vasp-binary-xyz").check_available()
    assert VASPEngine(launch_cmd="srun -n 4 vasp_std").launch_cmd == ["srun", "-n", "4", "vasp_std"]


# ----------------------------------------------------------------------------------------- parsing
def _finished_pair(tmp_path: Path) -> tuple[Path, Path]:
    engine = VASPEngine()
    static, nscf = tmp_path / STATIC_DIR, tmp_path / NSCF_DIR
    engine.write_static_inputs(silicon(), static)
    run_fake(static)
    engine.write_nscf_inputs(static, nscf)
    run_fake(nscf)
    return static, nscf


def test_parse_hand_built_vasprun_onto_the_dataset_grid(tmp_path):
    static, nscf = _finished_pair(tmp_path)
    rec = VASPEngine().parse(silicon(), "Si2", static, nscf)
    raw = record_from_vasprun(FIXTURE, "raw")
    assert rec.site_dos.shape == (2, 3, 401) and rec.total_dos.shape == (401,)
    np.testing.assert_allclose(rec.energies, GPAW_V1_GRID.energies)
    assert rec.efermi == pytest.approx(EFERMI) and rec.energy == pytest.approx(E_TOTAL)
    assert rec.metadata["n_ibz_kpoints"] == 2 and rec.metadata["settings"]["potcar"] == "POTCAR.spec"
    e = rec.energies
    # states are conserved by smoothing + resampling inside the fixture's window (-12..+8 eV around E_F)
    inside = (e >= -9.5) & (e <= 7.5)
    raw_inside = (raw.energies >= -9.5) & (raw.energies <= 7.5)
    de, de_raw = e[1] - e[0], raw.energies[1] - raw.energies[0]
    assert rec.total_dos[inside].sum() * de == pytest.approx(raw.total_dos[raw_inside].sum() * de_raw, rel=0.03)
    for l in range(3):
        assert rec.site_dos[:, l, inside].sum() * de == pytest.approx(raw.site_dos[:, l, raw_inside].sum() * de_raw, rel=0.03)
    # the fixture's gap (0 .. 1.1 eV above E_F) stays empty in its middle; nothing beyond the fixture's +8 eV
    assert rec.total_dos[(e > 0.35) & (e < 0.75)].max() < 1e-3 * rec.total_dos.max()
    assert np.all(rec.total_dos[e > 8.5] == 0.0)
    np.testing.assert_allclose(rec.site_dos[0], rec.site_dos[1])  # equivalent Si sites


def test_parse_rejects_a_vasprun_of_another_structure(tmp_path):
    static, nscf = _finished_pair(tmp_path)
    carbon = Crystal(np.array([6, 6]), silicon().frac_coords, silicon().lattice)
    with pytest.raises(DFTCalculationError, match="not the one submitted") as exc:
        VASPEngine().parse(carbon, "C2", static, nscf)
    assert exc.value.kind == "engine_error"


# ----------------------------------------------------------------------------------------- full path
@pytest.mark.slow
def test_full_path_with_a_fake_launch_command_through_the_batch_driver(tmp_path):
    out = tmp_path / "out"
    s = compute_dos_dataset([("Si2", silicon())], out, VASPEngine(launch_cmd=fake_cmd("ok")), 120.0, progress=False)
    assert s.done == ["Si2"] and not s.failed
    rec = read_record_npz(record_path(out, "Si2"))
    assert rec.site_dos.shape == (2, 3, 401) and rec.efermi == pytest.approx(EFERMI)
    assert rec.metadata["settings"]["code"] == "VASP" and rec.metadata["settings"]["nscf"].startswith("pymatgen MPNonSCFSet")
    for step in (STATIC_DIR, NSCF_DIR):
        log = (out / "work" / "Si2" / step / "vasp.log").read_text()
        assert "fake VASP" in log and "writing wavefunctions" in log
    assert incar(out / "work" / "Si2" / NSCF_DIR / "INCAR")["ICHARG"] == "11"


@pytest.mark.slow
def test_failing_command_is_recorded_as_failed_with_its_log(tmp_path):
    out = tmp_path / "out"
    s = compute_dos_dataset([("Si2", silicon())], out, VASPEngine(launch_cmd=fake_cmd("fail")), 120.0, progress=False)
    assert not s.done and [f["kind"] for f in s.failed] == ["engine_error"]
    entry = read_failures(out)["Si2"]
    log = out / "work" / "Si2" / STATIC_DIR / "vasp.log"
    assert "exit status 1" in entry["error"] and str(log) in entry["error"] and "told to fail" in entry["error"]
    assert "internal error in SUBROUTINE FAKE" in log.read_text()  # the log is kept
    assert not record_path(out, "Si2").exists()


def test_unconverged_electronic_loop_is_not_converged(tmp_path):
    with pytest.raises(DFTCalculationError) as exc:
        VASPEngine(launch_cmd=fake_cmd("unconverged")).compute_dos(silicon(), "Si2", tmp_path)
    assert exc.value.kind == "not_converged" and "vasp.log" in exc.value.message


def test_pending_workflow_runs_step_by_step_without_a_launch_command(tmp_path):
    engine = VASPEngine()
    with pytest.raises(DFTCalculationError, match="static inputs written") as exc:
        engine.compute_dos(silicon(), "Si2", tmp_path)
    assert exc.value.kind == "pending"
    run_fake(tmp_path / STATIC_DIR)  # the user (or a batch job) runs VASP
    with pytest.raises(DFTCalculationError, match="nscf inputs written") as exc:
        engine.compute_dos(silicon(), "Si2", tmp_path)
    assert exc.value.kind == "pending" and (tmp_path / NSCF_DIR / "CHGCAR").exists()
    run_fake(tmp_path / NSCF_DIR)
    rec = engine.compute_dos(silicon(), "Si2", tmp_path)
    assert rec.site_dos.shape == (2, 3, 401) and rec.energy == pytest.approx(E_TOTAL)
    assert json.dumps(engine.config())  # the engine is rebuilt from its config in worker processes
