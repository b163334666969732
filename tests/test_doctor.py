"""``dosmatgen doctor``: one line per component, JSON output, exit status from the core only."""

from __future__ import annotations

import json

import pytest

from dosmatgen.cli.main import main


def _checks(capsys, *args):
    rc = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    return rc, report, {c["name"]: c for c in report["checks"]}


@pytest.mark.slow
def test_doctor_reports_every_component(capsys):
    rc, report, checks = _checks(capsys)
    assert rc == 0 and report["core_ok"] is True
    assert {"torch", "bundled data and models", "CHGNet (default MLFF)", "SevenNet", "Orb (paper's MLFF)",
            "GPAW (local DFT)", "Ray (+ dashboard)", "Dask distributed", "submitit", "mpi4py"} <= set(checks)
    assert all(c["status"] in ("ok", "missing", "error") for c in checks.values())
    assert checks["bundled data and models"]["status"] == "ok" and "3020 structures" in checks["bundled data and models"]["detail"]
    assert checks["CHGNet (default MLFF)"]["status"] == "ok"  # the default MLFF works offline
    # Orb weights never ship: the line says how to supply them
    assert checks["Orb (paper's MLFF)"]["status"] == "missing" and "--mlff-weights" in checks["Orb (paper's MLFF)"]["detail"]


@pytest.mark.slow
def test_doctor_checks_given_orb_weights_and_a_broken_core(capsys, tmp_path, monkeypatch):
    rc, _, checks = _checks(capsys, "--orb-weights", str(tmp_path / "orb-v2.ckpt"))
    assert rc == 0  # an optional piece failing does not fail the doctor
    assert checks["Orb (paper's MLFF)"]["status"] == "error" and "does not exist" in checks["Orb (paper's MLFF)"]["detail"]

    import dosmatgen.data.bundled as bundled

    monkeypatch.setattr(bundled, "bundled_dataset_path", lambda: tmp_path / "missing.zarr")
    rc, report, checks = _checks(capsys)
    assert rc == 1 and report["core_ok"] is False
    assert checks["bundled data and models"]["status"] == "error" and checks["bundled data and models"]["required"]
    main(["doctor"])
    assert "core: BROKEN" in capsys.readouterr().out


@pytest.mark.gpaw
def test_doctor_gpaw_line_runs_a_calculation(monkeypatch):
    """`import gpaw` alone does not load the compiled extension; the doctor runs a tiny SCF and reports its failure."""
    pytest.importorskip("gpaw")
    import dosmatgen.diagnostics as diagnostics

    good = diagnostics.check_gpaw()
    assert good.status == "ok" and "test SCF ok (H2 energy" in good.detail, good.detail
    monkeypatch.setattr(diagnostics, "GPAW_PROBE", "import gpaw.cgpaw; raise SystemExit('libxc.so.9: cannot open shared object')")
    bad = diagnostics.check_gpaw()
    assert bad.status == "error" and "test calculation failed" in bad.detail and "libxc.so.9" in bad.detail
    # a crash with no output (a signal in the compiled code) still says what happened
    monkeypatch.setattr(diagnostics, "GPAW_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    crashed = diagnostics.check_gpaw()
    assert crashed.status == "error" and "exit code -11 with no output" in crashed.detail


@pytest.mark.slow
@pytest.mark.gpaw
def test_gpaw_runs_inside_an_mpi_task(monkeypatch):
    """Inside an srun step or after an in-process MPI_Init by mpi4py (both export these variables) GPAW's serial
    backend refuses to start; the doctor's probe goes through the engine's preparation (the same call as
    ``GPAWEngine.check_available``) and still runs. Without the preparation the same environment fails."""
    pytest.importorskip("gpaw")
    import subprocess
    import sys

    import dosmatgen.diagnostics as diagnostics

    for var in ("PMIX_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.setenv(var, "1" if var != "PMIX_RANK" else "0")
    monkeypatch.delenv("GPAW_MPI_BACKEND", raising=False)
    bare = subprocess.run([sys.executable, "-c", "from gpaw import GPAW; import gpaw.dft"], capture_output=True, text=True)
    assert bare.returncode != 0 and "inside MPI launcher" in bare.stderr
    monkeypatch.delitem(sys.modules, "gpaw.mpi", raising=False)  # as in a fresh doctor process: GPAW's MPI not loaded yet
    check = diagnostics.check_gpaw()  # in-process gpaw imports too, not only the probe
    assert check.status == "ok", check.detail


def test_prepare_serial_gpaw_drops_launcher_variables_unless_a_backend_is_chosen(monkeypatch):
    """The launcher variables go before GPAW's MPI module loads; a user's GPAW_MPI_BACKEND keeps them (docs/usage.md, Troubleshooting)."""
    import os
    import sys

    from dosmatgen.dft.gpaw_engine import MPI_LAUNCHER_VARIABLES, prepare_serial_gpaw

    monkeypatch.delitem(sys.modules, "gpaw.mpi", raising=False)
    monkeypatch.delenv("GPAW_MPI_BACKEND", raising=False)
    for var in MPI_LAUNCHER_VARIABLES:
        monkeypatch.setenv(var, "1")
    assert sorted(prepare_serial_gpaw()) == sorted(MPI_LAUNCHER_VARIABLES)
    assert not any(var in os.environ for var in MPI_LAUNCHER_VARIABLES)

    for var in MPI_LAUNCHER_VARIABLES:
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("GPAW_MPI_BACKEND", "mpi4py")
    assert prepare_serial_gpaw() == []
    assert all(os.environ[var] == "1" for var in MPI_LAUNCHER_VARIABLES)
