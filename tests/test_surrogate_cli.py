"""``dosmatgen surrogate train / evaluate / predict`` end to end on a synthetic store (tiny model)."""

import json

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.io.structure_files import write_cif
from surrogate_fixture_helpers import synthetic_crystals, write_synthetic_dos_store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    store = write_synthetic_dos_store(root / "syn.zarr")
    cfg = root / "cfg.yaml"
    cfg.write_text("preset: tiny\nepochs: 2\nbatch_size: 8\nnum_threads: 1\n")
    rc = main(["surrogate", "train", "--data", str(store), "--out", str(root / "run"), "--config", str(cfg), "--seed", "1"])
    assert rc == 0
    return root, store


def test_train_writes_checkpoint_log_curves_and_val_report(trained, capsys):
    root, _ = trained
    run = root / "run"
    for name in ("surrogate.pt", "metrics.jsonl", "training_curves.png", "training_curves.svg", "val_evaluation.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "val_evaluation.json").read_text())["split"] == "val"
    assert json.loads((run / "train_config.json").read_text())["seed"] == 1


def test_evaluate_writes_json_with_checkpoint_hash(trained, capsys):
    root, store = trained
    out = root / "eval.json"
    assert main(["surrogate", "evaluate", "--checkpoint", str(root / "run" / "surrogate.pt"), "--data", str(store), "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["split"] == "test" and len(d["checkpoint_sha256"]) == 64
    assert "per-element mean" in capsys.readouterr().out


def test_predict_writes_csv_and_plots(trained, capsys):
    root, _ = trained
    crystals = synthetic_crystals(2)
    cif = write_cif(root / "two.cif", crystals, ids=["a", "b"])
    out = root / "pred"
    assert main(["surrogate", "predict", str(cif), "--checkpoint", str(root / "run" / "surrogate.pt"), "--out", str(out)]) == 0
    csv = out / "predicted_dos.csv"
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("# dosmatgen surrogate prediction (site DOS")
    header = lines[1].split(",")
    assert header[0] == '"energy_eV"' and len(header) == 1 + 4  # two 2-atom crystals
    values = np.loadtxt(csv, delimiter=",", skiprows=2)
    assert values.shape == (400, 5) and values[0, 0] == pytest.approx(-10.0)
    for rid in ("a", "b"):
        assert (out / f"{rid}_dos.png").stat().st_size > 1000 and (out / f"{rid}_dos.svg").is_file()


def test_bad_inputs_give_one_line_errors(trained, tmp_path, capsys):
    root, store = trained
    assert main(["surrogate", "predict", str(tmp_path / "x.cif"), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "no surrogate checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.cif"
    bad.write_text("this is not a CIF\n")
    rc = main(["surrogate", "predict", str(bad), "--checkpoint", str(root / "run" / "surrogate.pt"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no readable structure" in capsys.readouterr().err
    assert main(["surrogate", "evaluate", "--checkpoint", str(root / "run" / "surrogate.pt"), "--data", str(tmp_path / "no.zarr")]) == 2
    assert "no dataset store" in capsys.readouterr().err
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("preset: tiny\nnot_a_key: 3\n")
    assert main(["surrogate", "train", "--data", str(store), "--out", str(tmp_path / "r"), "--config", str(cfg)]) == 2
    assert "not_a_key" in capsys.readouterr().err
