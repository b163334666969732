"""Compute accounting in summary.json and ranked.md: worker-hours per stage from the manifests, node-hours and
GPU-hours of the Slurm jobs from sacct (faked here)."""

from __future__ import annotations

import json

import pytest

from dosmatgen_cluster.accounting import parse_sacct, record_slurm_usage

SACCT = "4242|dosmatgen-screen|7200|4|billing=512,cpu=512,gres/gpu=16,mem=900G,node=4\n" \
        "5000_0|dosmatgen-dft|1800|1|billing=256,cpu=256,mem=480G,node=1\n" \
        "5000_1|dosmatgen-dft|900|1|billing=256,cpu=256,mem=480G,node=1\n"


def test_parse_sacct_hours():
    rows = parse_sacct(SACCT)
    assert [(r["job_id"], r["node_hours"], r["gpu_hours"]) for r in rows] == [
        ("4242", 8.0, 32.0), ("5000_0", 0.5, 0.0), ("5000_1", 0.25, 0.0)]
    assert parse_sacct("4243|x|60|1|cpu=2,gres/gpu:a100=4,node=1\n")[0]["gpus"] == 4


def test_summary_reports_stage_hours_and_sacct(tmp_path, monkeypatch):
    from test_cluster_submitit_dft import _prepared

    from dosmatgen.screen.summary import write_summary

    store = _prepared(tmp_path / "run", top_k=1)
    (store.root / "dft_submissions.json").write_text(json.dumps(
        [{"time": 0, "cluster": "slurm", "jobs": [{"job_id": "5000_0", "target": "t0", "k": 0}]}]))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "sacct.calls"
    (bindir / "sacct").write_text(f"#!/bin/bash\necho \"$*\" >> {calls}\ncat <<'X'\n{SACCT}X\n")
    (bindir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    assert record_slurm_usage(store.root, {"SLURM_JOB_ID": "4242"}) is not None
    assert calls.read_text().split()[-1] == "4242,5000"  # the screen job and the DFT array
    summary = write_summary(store)
    acc = summary["accounting"]
    seconds = sum(store.manifest.done_info("sample", "t0", s)["seconds"] for s in range(2))
    assert acc["stages"]["sample"]["units"] == 2 and acc["stages"]["sample"]["worker_hours"] == pytest.approx(seconds / 3600)
    assert acc["slurm"]["screen"] == {"jobs": 1, "node_hours": 8.0, "gpu_hours": 32.0}
    assert acc["slurm"]["dft"] == {"jobs": 2, "node_hours": 0.75, "gpu_hours": 0.0}
    assert json.loads((store.root / "summary" / "summary.json").read_text())["accounting"] == acc
    md = (store.root / "summary" / "ranked.md").read_text()
    assert "| screen | 1 | 8 | 32 |" in md and "| sample | 2 |" in md


def test_not_on_slurm_records_nothing(tmp_path):
    from screen_helpers import small_store

    store = small_store(tmp_path / "run")
    assert record_slurm_usage(store.root, {}) is None and not (store.root / "accounting").exists()


def test_sacct_failure_is_reported_not_fatal(tmp_path, monkeypatch):
    from test_cluster_submitit_dft import _prepared

    from dosmatgen.screen.summary import write_summary

    store = _prepared(tmp_path / "run", top_k=1)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sacct").write_text("#!/bin/bash\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bindir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    record_slurm_usage(store.root, {"SLURM_JOB_ID": "1"})
    summary = write_summary(store)
    assert "accounting storage is disabled" in summary["accounting"]["slurm_error"]
    assert "Slurm accounting unavailable" in (store.root / "summary" / "ranked.md").read_text()
