"""``dosmatgen rank`` and ``dosmatgen dft`` end to end: tables, plots, bad input (exit 2, one line), the VASP engine
with a fake launch command and the pending workflow, and one real GPAW calculation (Si2, a few seconds)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.io.structure_files import write_cif, write_extxyz

from test_ranking import rocksalt, write_element_store

TESTS = Path(__file__).resolve().parent
FIXTURE = TESTS / "data" / "vasprun" / "Si" / "vasprun.xml"
FAKE_VASP = TESTS / "fake_vasp.py"


def silicon() -> Crystal:
    lat = 0.5 * 5.43 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    return Crystal(np.array([14, 14]), np.array([[0, 0, 0], [0.25, 0.25, 0.25]]), lat)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_rank")
    store, crystals = write_element_store(root / "el.zarr")
    cands = root / "cands.extxyz"
    write_extxyz(cands, [rocksalt(19, 35, 4.1), crystals[1], rocksalt(11, 17, 4.05)], ids=["KBr", "MgO-same", "NaCl"])
    return root, store, cands


def test_rank_writes_tables_and_plots_with_the_identical_candidate_first(setup, tmp_path, capsys):
    root, store, cands = setup
    relax = tmp_path / "relax.csv"
    relax.write_text("id,formation_energy_eV_per_atom\nKBr,-1.2\nMgO-same,-2.5\nNaCl,-1.9\n")
    out = tmp_path / "rank"
    rc = main(["rank", str(cands), "--target", f"{store}:el-001:0", "--baseline-store", str(store), "--out", str(out),
               "--top", "2", "--relax-table", str(relax), "--max-plots", "1"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "ranked 1 of 3 candidates" in text and "Mg sites" in text  # default: the target's element
    rows = list(csv.DictReader(open(out / "ranked.csv")))
    assert [r["id"] for r in rows] == ["MgO-same"]  # the only candidate with a Mg site
    assert rows[0]["sites"] == "0:Mg" and rows[0]["formation_energy_eV_per_atom"] == "-2.5000"
    assert "| 1 | MgO-same | MgO |" in (out / "ranked.md").read_text()
    assert json.loads((out / "ranking.json").read_text())["n_scored"] == 1  # only one candidate has Mg
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["rank001_MgO-same.png", "rank001_MgO-same.svg"]
    # every site and the cosine metric: all three are scored, the MgO cell (same as the target's) still first
    rc = main(["rank", str(cands), "--target", f"{store}:el-001:0", "--baseline-store", str(store), "--out", str(out),
               "--metric", "cosine", "--all-sites", "--max-plots", "0"])  # fmt: skip
    rows = list(csv.DictReader(open(out / "ranked.csv")))
    assert rc == 0 and [r["id"] for r in rows][0] == "MgO-same" and len(rows) == 3
    assert float(rows[0]["distance"]) < 0.05 < float(rows[1]["distance"])


def test_rank_bad_input_gives_one_line_errors(setup, tmp_path, capsys):
    root, store, cands = setup
    rc = main(["rank", str(cands), "--target", f"{store}:el-001:0", "--surrogate", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no surrogate checkpoint" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones(300))
    rc = main(["rank", str(cands), "--target", str(bad), "--baseline-store", str(store), "--out", str(tmp_path / "o"), "--all-sites"])
    err = capsys.readouterr().err
    assert rc == 2 and "400 values" in err
    rc = main(["rank", str(cands), "--target", str(bad.with_suffix(".csv")), "--baseline-store", str(store), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    tgt = tmp_path / "t.npy"
    np.save(tgt, np.exp(-np.linspace(-10, 10, 400) ** 2))
    rc = main(["rank", str(cands), "--target", str(tgt), "--baseline-store", str(store), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no reference site" in capsys.readouterr().err
    rc = main(["rank", str(cands), "--target", str(tgt), "--baseline-store", str(store), "--out", str(tmp_path / "o"),
               "--metric", "window", "--all-sites"])  # fmt: skip
    assert rc == 2 and "window metric needs" in capsys.readouterr().err


def _fake_launch(mode: str) -> str:
    return f"{sys.executable} {FAKE_VASP} {FIXTURE} {mode}"


def test_dft_vasp_with_a_fake_launch_command_and_comparison(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dosmatgen.dft.vasp_engine.potcar_dir", lambda: None)
    write_cif(tmp_path / "Si2.cif", [silicon()], ids=["Si2"])
    out = tmp_path / "dft"
    rc = main(["dft", "--engine", "vasp", str(tmp_path / "Si2.cif"), "--out", str(out), "--launch-cmd", _fake_launch("ok"),
               "--time-limit", "120", "--no-progress", "--target", "target-Au3Ni", "--all-sites"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "1 computed, 0 failed, 0 pending" in text
    assert (out / "records" / "Si2.npz").exists() and (out / "work" / "Si2" / "nscf" / "vasp.log").exists()
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    assert rows[0]["id"] == "Si2" and rows[0]["element"] == "Si" and float(rows[0]["mae_dft_vs_target"]) > 0
    assert (out / "comparison" / "Si2.png").exists()


@pytest.mark.slow
def test_dft_vasp_failure_and_pending(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dosmatgen.dft.vasp_engine.potcar_dir", lambda: None)
    write_cif(tmp_path / "Si2.cif", [silicon()], ids=["Si2"])
    out = tmp_path / "fail"
    rc = main(["dft", "--engine", "vasp", str(tmp_path / "Si2.cif"), "--out", str(out), "--launch-cmd", _fake_launch("fail"),
               "--no-progress"])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 0 and "0 computed, 1 failed" in cap.out and "exit status 1" in cap.err
    assert "told to fail" in (out / "work" / "Si2" / "static" / "vasp.log").read_text()

    pend = tmp_path / "pending"
    for _ in range(2):  # a pending structure is looked at again on every run, never skipped as failed
        rc = main(["dft", "--engine", "vasp", str(tmp_path / "Si2.cif"), "--out", str(pend), "--no-progress"])
        assert rc == 0 and "0 computed, 0 failed, 1 pending" in capsys.readouterr().out
    assert (pend / "work" / "Si2" / "static" / "INCAR").exists() and (pend / "work" / "Si2" / "static" / "POTCAR.spec").exists()
    rc = main(["dft", "--engine", "gpaw", str(tmp_path / "Si2.cif"), "--out", str(pend), "--launch-cmd", "vasp_std"])
    assert rc == 2 and "VASP options" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.gpaw
def test_dft_gpaw_si2_end_to_end_with_ranking_table_and_comparison(setup, tmp_path, capsys):
    pytest.importorskip("gpaw")
    root, store, _ = setup
    write_cif(tmp_path / "Si2.cif", [silicon()], ids=["Si2"])  # one-block CIF: the id is the file name
    ranked = tmp_path / "ranked.csv"
    ranked.write_text("rank,id\n1,Si2\n")
    out = tmp_path / "gpaw"
    rc = main(["dft", "--engine", "gpaw", str(tmp_path / "Si2.cif"), "--out", str(out), "--ranked", str(ranked),
               "--time-limit", "300", "--no-progress", "--target", f"{store}:el-000:0", "--baseline-store", str(store),
               "--all-sites"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "1 computed, 0 failed" in text
    from dosmatgen.dft.record_file import read_record_npz

    rec = read_record_npz(out / "records" / "Si2.npz")
    assert rec.site_dos.shape == (2, 3, 401) and rec.metadata["settings"]["code"] == "GPAW"
    rows = list(csv.DictReader(open(out / "comparison.csv")))
    assert rows[0]["element"] == "Si" and float(rows[0]["mae_dft_vs_surrogate"]) > 0
    assert (out / "comparison" / "Si2.svg").exists()


@pytest.mark.slow
def test_sample_relax_rank_dft_chain_on_generated_candidates(tmp_path, capsys, monkeypatch):
    """The four commands chain on their own outputs: crystals generated by the shipped model for the Ni site of
    Au3Ni -> batched relaxation with formation energies (the Lennard-Jones MLFF, which covers every element, for
    speed; CHGNet is the same code path) -> surrogate ranking that carries the formation energies over from the
    relax table -> VASP on the top candidate (fake launch command)."""
    monkeypatch.setattr("dosmatgen.dft.vasp_engine.potcar_dir", lambda: None)
    s, r, k, d = (tmp_path / x for x in ("sample", "relax", "rank", "dft"))
    assert main(["sample", "--checkpoint", "bundled:dosmatgen-small", "--target", "target-Au3Ni", "--num-atoms", "4",
                 "--n", "4", "--seed", "1", "--out", str(s)]) == 0
    assert main(["relax", str(s / "generated_crystals.extxyz"), "--mlff", "lj", "--max-steps", "100",
                 "--out", str(r)]) == 0
    table = list(csv.DictReader(open(r / "relax_table.csv")))
    relaxed_ids = [row["id"] for row in table if row["formation_energy_relaxed"] not in ("", "nan")]
    assert len(table) == 4 and relaxed_ids, table
    assert main(["rank", str(r / "relaxed.extxyz"), "--relax-table", str(r / "relax_table.csv"), "--target",
                 "target-Au3Ni", "--surrogate", "bundled:surrogate-small", "--top", "1", "--all-sites", "--out", str(k)]) == 0
    ranked = list(csv.DictReader(open(k / "ranked.csv")))
    by_id = {row["id"]: row for row in table}
    assert len(ranked) == 1 and all(row["id"] in by_id for row in ranked)
    fe_col = next(c for c in ranked[0] if c.startswith("formation_energy"))
    for row in ranked:  # the relax table's formation energies reached the ranked table
        want = float(by_id[row["id"]]["formation_energy_relaxed"])
        assert (row[fe_col] in ("", "nan") and not np.isfinite(want)) or abs(float(row[fe_col]) - want) < 1e-4  # table rounds to 4 decimals
    capsys.readouterr()
    assert main(["dft", "--engine", "vasp", str(r / "relaxed.extxyz"), "--ranked", str(k / "ranked.csv"),
                 "--out", str(d), "--launch-cmd", _fake_launch("ok"), "--time-limit", "120", "--no-progress"]) == 0
    # the fake VASP returns the Si2 fixture's vasprun.xml, which the engine refuses for this candidate: the DFT
    # step ran on exactly the top-ranked id and recorded why it failed
    assert "0 computed, 1 failed" in capsys.readouterr().out
    failure = json.loads((d / "failures.jsonl").read_text().splitlines()[-1])
    assert failure["id"] == ranked[0]["id"] and "is not the one submitted" in failure["error"]
    assert (d / "work" / ranked[0]["id"] / "static" / "INCAR").exists()
