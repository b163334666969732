"""`pip install` of the project brings the checkpoints, demo targets and dataset as package data (issue 7).

The wheel is built from a copy of the sources, so the test never writes build folders into the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_package_list_names_every_library_package_and_maps_the_orchestration_folders():
    """The package list is explicit (packages.find cannot rename cluster/ -> dosmatgen_cluster): a new folder
    under dosmatgen/ that is missing from it would silently be left out of the wheel."""
    st = _pyproject()["tool"]["setuptools"]
    on_disk = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in (REPO / "dosmatgen").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert set(st["packages"]) == on_disk | {"dosmatgen_cluster", "dosmatgen_jobs"}
    assert st["package-dir"] == {"dosmatgen_cluster": "cluster", "dosmatgen_jobs": "jobs"}


@pytest.mark.slow
def test_wheel_carries_every_bundled_resource(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for package in ("dosmatgen", "cluster", "jobs"):
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("dosmatgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    resources = REPO / "dosmatgen" / "resources"
    shipped = {f"dosmatgen/resources/{p.relative_to(resources).as_posix()}" for p in resources.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped - names == set()
    for required in ("checkpoints/dosmatgen-small.pt", "checkpoints/surrogate-small.pt", "checkpoints/regressor-small.pt",
                     "targets/target-Au3Ni.npz", "targets/target-IrO2.npz", "data/gpaw-v2.zarr/zarr.json"):
        assert f"dosmatgen/resources/{required}" in names
    # the orchestration and job packages install too; the CLI entry point is declared
    assert "dosmatgen_cluster/__init__.py" in names and "dosmatgen_jobs/dft_job.py" in names
    assert not any(n.startswith(("cluster/", "jobs/")) for n in names)  # never the generic top-level names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "dosmatgen = dosmatgen.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
