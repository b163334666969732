"""Plots: every figure is written as non-empty PNG and SVG files, bad input is refused clearly."""

import json

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.errors import InvalidRecordError
from dosmatgen.plots.dos_comparison import SiteDOSSample, formula_with_highlight, plot_site_dos_comparison
from dosmatgen.plots.energy_histograms import plot_formation_energy_histograms
from dosmatgen.plots.surrogate_comparison import plot_target_surrogate_dft
from dosmatgen.plots.training_curves import plot_training_curves, read_jsonl

SRTIO3 = Crystal([38, 22, 8, 8, 8], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], np.eye(3) * 3.9)


def _check(paths):
    assert sorted(p.suffix for p in paths) == [".png", ".svg"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]


def _dos(shift=0.0, n=SITE_GRID.n):
    e = np.linspace(-10, 10, n)
    return np.exp(-0.5 * (e + 3 - shift) ** 2) + 0.5 * np.exp(-0.5 * (e - 4 - shift) ** 2)


def test_formula_highlights_the_conditioned_element():
    f = formula_with_highlight(SRTIO3, 1)
    assert r"$\mathbf{Ti}$" in f and "Sr" in f and "O$_{3}$" in f
    assert formula_with_highlight(None, 0) == "(no structure)"


@pytest.mark.slow
def test_site_dos_comparison(tmp_path):
    samples = [
        SiteDOSSample(_dos(), _dos(0.3), SRTIO3, SRTIO3, 1, "t_start 200"),
        SiteDOSSample(_dos(), None, SRTIO3, None, 0, "invalid generation"),
        SiteDOSSample(_dos(), np.full(400, np.nan), SRTIO3, SRTIO3, 4),
    ]
    _check(plot_site_dos_comparison(samples, tmp_path / "dos_cmp.png"))
    with pytest.raises(ValueError):
        plot_site_dos_comparison([], tmp_path / "none")


@pytest.mark.slow
def test_formation_energy_histograms(tmp_path):
    rng = np.random.default_rng(0)
    panels = {
        "generated vs ground truth": {"ground truth": rng.normal(-1.5, 0.5, 200), "generated": rng.normal(-1.2, 0.7, 150)},
        "relaxed vs unrelaxed": {"unrelaxed": np.append(rng.normal(-0.8, 0.9, 150), np.nan), "relaxed": rng.normal(-1.2, 0.7, 150)},
    }
    _check(plot_formation_energy_histograms(panels, tmp_path / "ef"))
    _check(plot_formation_energy_histograms({"empty": {"generated": []}}, tmp_path / "ef_empty"))


@pytest.mark.slow
def test_training_curves_from_jsonl(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"epoch": i, "train_loss": 1.0 / i, "val_loss": 1.2 / i, "lr": 1e-3, "train_structures_per_s": 50.0} for i in range(1, 11)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"epoch\": 11, \"train_lo")  # torn last line
    assert len(read_jsonl(log)) == 10
    _check(plot_training_curves(log, tmp_path / "curves", title="surrogate"))
    with pytest.raises(InvalidRecordError, match="no such metrics log"):
        plot_training_curves(tmp_path / "missing.jsonl", tmp_path / "x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops}\n{\"epoch\": 1}\n")
    with pytest.raises(InvalidRecordError, match="record 1"):
        read_jsonl(bad)


def test_target_surrogate_dft(tmp_path):
    _check(plot_target_surrogate_dft(_dos(), _dos(0.2), _dos(0.1), tmp_path / "cmp", title="SrTiO3 Ti#1"))
    _check(plot_target_surrogate_dft(_dos(n=256), _dos(0.2, 256), None, tmp_path / "cmp_total", grid=TOTAL_GRID))
    with pytest.raises(ValueError, match="expected"):
        plot_target_surrogate_dft(_dos(), _dos(n=256), None, tmp_path / "bad")
