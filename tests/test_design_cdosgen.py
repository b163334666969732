"""The CDOSGen check: pair statistics on hand-made spectra, and a smoke run on a tiny total-DOS generator."""

from __future__ import annotations

import numpy as np
import pytest
from design_fixture_helpers import gap_dos, train_tiny_total

from dosmatgen.design.cdosgen_check import pair_metrics


def test_identical_predictions_beat_random_pairs_and_nan_rows_are_undefined():
    cond = np.stack([gap_dos(g, height=1.0) for g in (0.0, 1.0, 2.0, 4.0)])
    cond[:, :60] *= np.arange(1, 5)[:, None]  # rows differ in shape, not only in the gap
    m = pair_metrics(cond, cond.copy(), np.array([1, 2, 3, 0]))
    assert m["cosine"]["matched"]["mean"] == 1.0
    assert m["cosine"]["random"]["mean"] < 1.0 and m["cosine"]["difference"]["lo"] > 0
    assert m["band_gap_mae"]["matched"]["mean"] == 0.0 and m["band_gap_mae"]["random"]["mean"] > 0.5
    # Jensen-Shannon divergence (paper Table 3): 0 for identical spectra, larger for random pairs
    assert m["js_divergence"]["matched"]["mean"] == 0.0 and m["js_divergence"]["difference"]["hi"] < 0
    pred = cond.copy()
    pred[2] = np.nan
    m = pair_metrics(cond, pred, np.array([1, 2, 3, 0]))
    assert m["undefined"] == 1 and m["cosine"]["matched"]["n_sites"] == 3 and m["cosine"]["random"]["n_sites"] == 3


@pytest.mark.slow
def test_check_runs_on_a_tiny_generator_as_a_script(tmp_path):
    import json
    import os
    import subprocess
    import sys

    ckpt = train_tiny_total(tmp_path / "tiny")
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, "-m", "dosmatgen.design.cdosgen_check", "--checkpoint", ckpt, "--limit", "4",
                           "--sampling-steps", "5", "--out", str(out)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "CDOSGen check on 4 test structures (subset all, 1 per structure, 4 valid crystals, 5 sampling steps)" in proc.stdout
    r = json.loads(out.read_text())
    assert r["sampling_steps"] == 5 and r["structures"] == 4 and r["surrogate_route"] == "mean of site-surrogate DOS over atoms"
    assert np.isfinite(r["oracle"]["cosine"]["matched"]["mean"])
    assert set(r["generated"]) >= {"cosine", "pearson", "js_divergence", "band_gap_mae", "dos_ef_mae", "n_ef_mae", "undefined"}


def test_evaluate_runs_the_check_for_a_total_dos_denoiser(tmp_path, capsys):
    import json

    from dosmatgen.cli.main import main

    ckpt = train_tiny_total(tmp_path / "tiny")
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", ckpt, "--limit", "3", "--out", str(out)]) == 0
    result = json.loads((out / "cdosgen_check.json").read_text())
    assert result["structures"] == 3 and "CDOSGen check on 3 test structures" in capsys.readouterr().out
