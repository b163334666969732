"""Targets: built-in demo targets, user DOS files (any grid), bad input, CLI."""

import json

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import InvalidRecordError
from dosmatgen.targets import list_targets, load_builtin_target, resolve_target, target_from_file


def test_builtin_demo_targets_are_the_papers():
    assert {"target-Au3Ni", "target-IrO2"} <= set(list_targets())
    ni = load_builtin_target("target-Au3Ni")
    assert sorted(ni.reference.symbols) == ["Au", "Au", "Au", "Ni"] and ni.reference.symbols[ni.reference_sites[0]] == "Ni"
    ir = load_builtin_target("target-IrO2")
    assert ir.reference.formula == "IrO2" and all(ir.reference.symbols[s] == "Ir" for s in ir.reference_sites)
    for t in (ni, ir):
        assert t.features.shape == (400,) and t.features.dtype == np.float32
        assert t.features.min() >= 0 and t.features.max() > 0.5
    # the Ni d band in Au3Ni is filled: within 3 eV of E_F, far more weight below than above
    e = SITE_GRID.energies
    assert ni.features[(e > -3) & (e < 0)].sum() > 2 * ni.features[(e > 0) & (e < 3)].sum()


def _gaussian(e, mu, s):
    return np.exp(-0.5 * ((e - mu) / s) ** 2) / (s * np.sqrt(2 * np.pi))


def test_csv_and_json_targets_on_other_grids_agree(tmp_path):
    e = np.linspace(-14, 12, 1301)  # a finer, wider grid than the model's
    d = 3 * _gaussian(e, -2.0, 0.4) + _gaussian(e, 1.5, 0.3)
    csv = tmp_path / "t.csv"
    np.savetxt(csv, np.c_[e, d], delimiter=",", header="energy_eV,dos", comments="")
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"energies": (e + 5.0).tolist(), "dos": d.tolist(), "efermi": 5.0}))
    a, b = target_from_file(csv), target_from_file(js)
    np.testing.assert_allclose(a.features, b.features, atol=1e-5)
    peak = SITE_GRID.energies[np.argmax(a.features)]
    assert abs(peak - (-2.0)) < 0.1
    # integral is preserved by resampling (smoothing keeps area)
    assert abs(a.features.sum() * SITE_GRID.step - 4.0) < 0.05


@pytest.mark.parametrize(
    "content, suffix, message",
    [
        ("energy,dos\n-1,0.1\n0,nan\n1,0.2\n", ".csv", "NaN"),
        ("energy,dos\n-1,0.1\n0,-3\n1,0.2\n", ".csv", "negative"),
        ('{"energies": [0, 1, 2], "dos": [1, 2]}', ".json", "shape"),
        ("energy,dos\n20,0.1\n21,0.2\n22,0.2\n", ".csv", "zero on the model window"),
    ],
)
def test_bad_target_files_name_the_file_and_problem(tmp_path, content, suffix, message):
    p = tmp_path / f"bad{suffix}"
    p.write_text(content)
    with pytest.raises(InvalidRecordError, match=message) as info:
        target_from_file(p)
    assert str(p) in str(info.value)


def test_npy_target_must_be_on_model_grid(tmp_path):
    p = tmp_path / "t.npy"
    np.save(p, np.ones(300))
    with pytest.raises(InvalidRecordError, match="400 values"):
        target_from_file(p)
    np.save(p, np.ones(400))
    assert target_from_file(p).features.shape == (400,)


def test_unknown_target_spec():
    with pytest.raises(InvalidRecordError, match="unknown"):
        resolve_target("no-such-target")


def test_cli_targets_list_and_show(tmp_path, capsys):
    assert main(["targets", "list"]) == 0
    assert "target-Au3Ni" in capsys.readouterr().out
    out = tmp_path / "ni.png"
    assert main(["targets", "show", "target-Au3Ni", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.with_suffix(".svg").exists()
    assert main(["targets", "show", str(tmp_path / "missing.csv")]) == 2
