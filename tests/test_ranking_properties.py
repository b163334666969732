"""Ranking by property targets on a predicted total DOS (`dosmatgen rank --band-gap ...`): the order and the
rejection filter on hand-made spectra, and the CLI with a real (tiny, untrained) total-DOS surrogate checkpoint."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from design_fixture_helpers import gap_dos

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.dos.property_targets import PropertyTargetError, PropertyTargets, target_properties
from dosmatgen.ranking import Candidate
from dosmatgen.ranking.property_rank import rank_by_properties
from dosmatgen.ranking.property_table import write_property_tables

# candidate i has a predicted total DOS with a band gap of GAPS[i] eV (row 4: metallic, DOS(E_F) 1.5)
GAPS = [0.0, 2.5, 1.05, 0.5, 0.0, 0.95]


def _cell(a: float) -> Crystal:
    return Crystal([11, 17], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * a)


def _predict(crystals):
    """The hand-made spectrum of each candidate, looked up by its lattice constant (a = 4 + i/10)."""
    rows = []
    for c in crystals:
        i = int(round((c.lattice[0, 0] - 4.0) * 10))
        rows.append(np.full(256, np.nan) if i == 0 else gap_dos(GAPS[i], dos_ef=1.5 if i == 4 else 0.0))
    return np.stack(rows)


def _candidates():
    return [Candidate(f"c{i}", _cell(4.0 + i / 10), formation_energy=(0.5 if i == 3 else -0.1)) for i in range(len(GAPS))]


def test_candidates_meeting_the_targets_rank_first_then_by_distance():
    gaps = target_properties(np.stack([gap_dos(g) for g in GAPS[1:]]))["band_gap"]
    result = rank_by_properties(_candidates(), _predict, PropertyTargets(band_gap=1.0), top_k=3, max_formation_energy=0.2)
    order = [r.candidate.id for r in result.ranked]
    # c2 (1.05 eV) and c5 (0.95 eV) meet 1.0 eV ± 10 %, nearer first; then c1 and c4 (miss); c0 (failed prediction)
    # and c3 (formation energy 0.5 > 0.2) are not scored and come last, in input order
    near = sorted(["c2", "c5"], key=lambda k: abs(gaps[int(k[1]) - 1] - 1.0))
    assert order[:2] == near and set(order[2:4]) == {"c1", "c4"} and order[4:] == ["c0", "c3"]
    assert [r.meets for r in result.ranked[:4]] == [True, True, False, False]
    assert result.n_scored == 4 and result.n_meeting == 2
    assert "total-DOS prediction failed" in result.ranked[4].flags and "formation energy 0.500 > 0.2" in result.ranked[5].flags[0]
    assert [r.rank for r in result.ranked] == [1, 2, 3, 4, 0, 0]
    assert len(result.top) == 3
    only = rank_by_properties(_candidates(), _predict, PropertyTargets(band_gap=1.0), top_k=3, only_meeting=True)
    assert [r.candidate.id for r in only.top] == near
    metal = rank_by_properties(_candidates(), _predict, PropertyTargets(band_gap=0.0, dos_ef=1.5))
    assert metal.ranked[0].candidate.id == "c4" and metal.n_meeting == 1


def test_tables_report_the_properties_and_the_filter(tmp_path):
    result = rank_by_properties(_candidates(), _predict, PropertyTargets(band_gap=1.0), top_k=2, predictor_name="hand-made")
    paths = write_property_tables(result, tmp_path)
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [r["meets_targets"] for r in rows] == ["yes", "yes"] and abs(float(rows[0]["band_gap_eV"]) - 1.0) <= 0.1
    every = list(csv.DictReader(open(paths["all"])))
    assert len(every) == len(GAPS) and every[-1]["rank"] == "" and every[-1]["score"] == ""
    md = paths["md"].read_text()
    assert "--band-gap 1.0" in md and "2 meet every target" in md


def test_no_target_is_an_error():
    with pytest.raises(PropertyTargetError, match="no target"):
        rank_by_properties(_candidates(), _predict, PropertyTargets())


@pytest.fixture(scope="module")
def total_surrogate(tmp_path_factory):
    import torch

    from dosmatgen.dos.grid import TOTAL_GRID
    from dosmatgen.dos.scaler import PerBinStandardScaler
    from dosmatgen.surrogate.checkpoint import save_checkpoint
    from dosmatgen.surrogate.config import SurrogateConfig
    from dosmatgen.surrogate.model import DOSSurrogate

    torch.manual_seed(0)
    model = DOSSurrogate(SurrogateConfig.tiny(target="total"))
    rng = np.random.default_rng(0)
    scaler = PerBinStandardScaler().fit(np.abs(rng.normal(0.5, 0.3, size=(32, TOTAL_GRID.n))))
    return str(save_checkpoint(tmp_path_factory.mktemp("surrogate") / "total.pt", model, scaler, TOTAL_GRID))


@pytest.fixture()
def cifs(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i in range(1, len(GAPS)):
        _cell(4.0 + i / 10).to_pymatgen().to(filename=str(folder / f"c{i}.cif"))
    return folder


def test_cli_ranks_by_properties_with_a_total_dos_surrogate(tmp_path, cifs, total_surrogate, capsys):
    from dosmatgen.design.total_dos import SurrogateTotalDOS
    from dosmatgen.ranking.candidates import load_candidates

    out = tmp_path / "ranked"
    assert main(["rank", str(cifs), "--surrogate", total_surrogate, "--band-gap", "0.5", "--top", "3", "--out", str(out)]) == 0
    assert "meet every target" in capsys.readouterr().out
    info = json.loads((out / "ranking.json").read_text())
    assert info["n_scored"] == 5 and info["targets"]["band_gap"] == 0.5 and "total surrogate" in info["predictor"]
    rows = list(csv.DictReader(open(out / "all_candidates.csv")))
    # the table's properties are those of the surrogate's own prediction for each candidate
    candidates, _ = load_candidates([cifs])
    predicted = SurrogateTotalDOS(total_surrogate)([c.crystal for c in candidates])
    gaps = dict(zip([c.id for c in candidates], target_properties(predicted)["band_gap"]))
    for r in rows:
        assert float(r["band_gap_eV"]) == pytest.approx(gaps[r["id"]], abs=1e-4)
    assert (out / "plots" / "top_candidates_dos.png").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["--target", "target-Au3Ni", "--band-gap", "1.0"], "not both"),
    ([], "nothing to rank by"),
    (["--target", "target-Au3Ni"], "total-DOS surrogate: rank with it by property targets"),
    (["--band-gap", "-1"], "band_gap (--band-gap) must be >= 0"),
    (["--tcm", "1", "--thermoelectric"], "contradictory targets"),
    (["--band-gap", "1.0", "--te-reference", "x.cif"], "--te-reference needs --thermoelectric"),
])
def test_bad_rank_requests_are_clear_errors(tmp_path, cifs, total_surrogate, capsys, args, message):
    out = tmp_path / "ranked"
    assert main(["rank", str(cifs), "--surrogate", total_surrogate, *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_property_targets_need_a_surrogate_not_a_baseline_store(tmp_path, cifs, capsys):
    out = tmp_path / "ranked"
    assert main(["rank", str(cifs), "--baseline-store", str(tmp_path / "s.zarr"), "--band-gap", "1", "--out", str(out)]) == 2
    assert "give --surrogate" in capsys.readouterr().err
