"""``dosmatgen relax`` end to end with the EMT potential (fast), plus its error paths."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.io.structure_files import read_structures, write_cif, write_extxyz
from tests.relax_helpers import rattled_fcc


def test_relax_cli_writes_structures_and_table(tmp_path, capsys):
    good = [rattled_fcc("Cu", 3.7, seed=1), rattled_fcc("Au", 4.2, seed=2)]
    overlapping = Crystal(np.array([29, 29]), np.array([[0, 0, 0], [0.01, 0, 0]]), np.eye(3) * 4.0)
    iron = Crystal(np.array([26, 26]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 2.87)
    write_extxyz(tmp_path / "in.extxyz", good + [overlapping], ["cu", "au", "overlap"])
    write_cif(tmp_path / "fe.cif", [iron], ["fe"])
    out = tmp_path / "out"
    rc = main(["relax", str(tmp_path / "in.extxyz"), str(tmp_path / "fe.cif"), "--mlff", "emt", "--out", str(out),
               "--fmax", "0.05", "--batch-size", "2", "--reference-cache", str(tmp_path / "refs.json")])
    assert rc == 0
    rows = {r["id"]: r for r in csv.DictReader(open(out / "relax_table.csv"))}
    assert rows["cu"]["status"] == rows["au"]["status"] == "converged"
    assert rows["overlap"]["status"] == "rejected" and "overlapping" in rows["overlap"]["reason"]
    assert rows["fe"]["status"] == "rejected" and "Fe" in rows["fe"]["reason"]
    assert rows["overlap"]["failure"] == "overlapping_atoms" and rows["fe"]["failure"] == "unsupported_elements"
    # elemental crystals: formation energy relative to the same potential's fcc reference, close to 0
    assert abs(float(rows["cu"]["formation_energy_relaxed"])) < 0.02
    assert float(rows["cu"]["energy_relaxed"]) < float(rows["cu"]["energy_initial"])
    ids, relaxed = read_structures(out / "relaxed.extxyz")
    assert ids == ["cu", "au"] and len(read_structures(out / "relaxed_cif.zip")[1]) == 2
    meta = json.loads((out / "relax_table.json").read_text())
    assert meta["mlff"].startswith("emt@") and meta["mlff_calls"] > 0 and len(meta["rows"]) == 4
    assert "relaxed 2/4" in capsys.readouterr().out


def test_relax_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["relax", str(tmp_path / "missing.cif"), "--mlff", "emt", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    write_extxyz(tmp_path / "in.extxyz", [rattled_fcc("Cu", 3.7, seed=1)], ["cu"])
    assert main(["relax", str(tmp_path / "in.extxyz"), "--mlff", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown MLFF" in capsys.readouterr().err


@pytest.mark.slow
def test_relax_cli_takes_a_run_store(tmp_path, capsys):
    """A screening run as input: its sampled candidates are relaxed under ids <target>/<row>; the run is only read."""
    from screen_helpers import small_store

    from dosmatgen.screen.baseline import load_random_sampler
    from dosmatgen.screen.stages import sample_shard

    run = tmp_path / "run"
    store = small_store(run, n=6, shard_size=4, targets=("t0", "t1"))
    sampler = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
    sample_shard(store, "t0", 0, sampler)  # rows 0-3 of t0; shard 1 of t0 and all of t1 not sampled
    sample_shard(store, "t1", 1, sampler)  # rows 4-5 of t1
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    out = tmp_path / "out"
    common = ["--mlff", "emt", "--fmax", "0.1", "--max-steps", "20", "--reference-cache", str(tmp_path / "refs.json")]
    assert main(["relax", str(run), "--out", str(out)] + common) == 0
    rows = {r["id"]: r for r in csv.DictReader(open(out / "relax_table.csv"))}
    assert sorted(rows) == ["t0/0", "t0/1", "t0/2", "t0/3", "t1/4", "t1/5"]
    assert all(r["status"] in ("converged", "not_converged") for r in rows.values())
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written into the run
    # the store.zarr folder works too, and --target narrows it down
    assert main(["relax", str(run / "store.zarr"), "--target", "t1", "--out", str(tmp_path / "o2")] + common) == 0
    assert [r["id"] for r in csv.DictReader(open(tmp_path / "o2" / "relax_table.csv"))] == ["t1/4", "t1/5"]
    capsys.readouterr()
    assert main(["relax", str(run), "--target", "nope", "--out", str(tmp_path / "o3")] + common) == 2
    assert "no target(s) ['nope']" in capsys.readouterr().err
    # relaxed structures exist only after the relax stage: none yet, a clear error
    assert main(["relax", str(run), "--stage", "relax", "--out", str(tmp_path / "o4")] + common) == 2
    assert "no structures to relax" in capsys.readouterr().err


@pytest.mark.mlff
def test_relax_cli_orb_without_weights_explains(tmp_path, capsys):
    write_extxyz(tmp_path / "in.extxyz", [rattled_fcc("Cu", 3.7, seed=1)], ["cu"])
    assert main(["relax", str(tmp_path / "in.extxyz"), "--mlff", "orb", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--mlff-weights" in err and len(err.strip().splitlines()) == 1


def test_relax_cli_bfgs_optimizer(tmp_path):
    write_extxyz(tmp_path / "in.extxyz", [rattled_fcc("Cu", 3.7, seed=1)], ["cu"])
    common = ["relax", str(tmp_path / "in.extxyz"), "--mlff", "emt", "--reference-cache", str(tmp_path / "refs.json")]
    assert main(common + ["--out", str(tmp_path / "fire")]) == 0
    assert main(common + ["--out", str(tmp_path / "bfgs"), "--optimizer", "bfgs"]) == 0
    fire, bfgs = (json.loads((tmp_path / d / "relax_table.json").read_text()) for d in ("fire", "bfgs"))
    assert fire["optimizer"] == "fire" and bfgs["optimizer"] == "bfgs"
    (f,), (b,) = fire["rows"], bfgs["rows"]
    assert f["status"] == b["status"] == "converged" and f["steps"] != b["steps"]
    assert abs(float(f["energy_relaxed"]) - float(b["energy_relaxed"])) < 1e-3  # same minimum, another path
