"""Energy above the hull of user-supplied competing phases (relaxed by the same force field) in the screen's relax
stage, the `dosmatgen relax` CLI and the per-target filter thresholds of a screen config."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.structure_files import write_cif, write_extxyz
from dosmatgen.runstore import Flag
from dosmatgen.screen.stages import FilterConfig, RelaxOutcome, filter_flags


def l12(a: float = 3.75) -> Crystal:
    """L1_2 Cu3Au (Au at the corner)."""
    return Crystal(np.array([79, 29, 29, 29]), np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]), a * np.eye(3))


def b2(a: float = 3.1) -> Crystal:
    """B2 CuAu: EMT puts it about 5 meV/atom above the hull of L1_2 Cu3Au and the elements."""
    return Crystal(np.array([29, 79]), np.array([[0, 0, 0], [.5, .5, .5]]), a * np.eye(3))


@pytest.fixture(scope="module")
def relaxer_with_phases(tmp_path_factory):
    from dosmatgen.screen.library_stages import load_mlff_relaxer

    root = tmp_path_factory.mktemp("hull")
    write_extxyz(root / "known.extxyz", [l12()], ids=["Cu3Au-L12"])
    return root, load_mlff_relaxer(mlff="emt", fmax=0.02, max_steps=300, batch_size=8, competing_phases=str(root / "known.extxyz"),
                                   references_cache=str(root / "refs.json"))


def test_candidates_get_their_energy_above_the_hull_of_the_competing_phases(relaxer_with_phases):
    _, relaxer = relaxer_with_phases
    assert [p[0] for p in relaxer.competing.phases] == ["Cu3Au-L12"] and relaxer.competing.rejected == []
    same, other = relaxer([l12(3.8), b2()])
    assert same.energy_above_hull == pytest.approx(0.0, abs=5e-4)  # the known phase itself sits on the hull
    assert other.energy_above_hull > 0.003 and math.isfinite(other.formation_energy)
    # the filter cuts on it; unknown counts as failing when the cut is on
    cut = FilterConfig(require_converged=False, min_distance=1.0, max_energy_above_hull=0.002)
    assert filter_flags(same, cut) == 0
    assert filter_flags(other, cut) & Flag.ABOVE_HULL
    unknown = RelaxOutcome(l12(), 0.0, 0.0, -0.1, 3, True)
    assert filter_flags(unknown, cut) & Flag.ABOVE_HULL
    assert filter_flags(unknown, FilterConfig(require_converged=False, min_distance=1.0)) == 0


def test_competing_phases_bad_input_names_the_file(tmp_path):
    from dosmatgen.relax import BatchedRelaxer, RelaxSettings, get_mlff
    from dosmatgen.relax.competing_phases import CompetingPhases

    relaxer = BatchedRelaxer(get_mlff("emt"), RelaxSettings(max_steps=5))
    with pytest.raises(InvalidRecordError, match="no such file"):
        CompetingPhases.load(tmp_path / "none.cif", relaxer)
    (tmp_path / "junk.cif").write_text("data_x\n_cell_length_a oops\n")
    with pytest.raises(InvalidRecordError) as err:
        CompetingPhases.load(tmp_path / "junk.cif", relaxer)
    assert "junk.cif" in str(err.value)
    # a phase the force field cannot handle is reported, not silently used
    write_extxyz(tmp_path / "mixed.extxyz", [l12(), Crystal(np.array([8, 8]), np.array([[0, 0, 0], [.5, .5, .5]]), 3 * np.eye(3))],
                 ids=["ok", "oxygen"])
    phases = CompetingPhases.load(tmp_path / "mixed.extxyz", relaxer)
    assert [p[0] for p in phases.phases] == ["ok"] and phases.rejected[0][0] == "oxygen"


def test_relax_cli_writes_energy_above_hull_and_filters_on_it(tmp_path, capsys):
    write_extxyz(tmp_path / "cands.extxyz", [l12(3.8), b2()], ids=["L12", "B2"])
    write_cif(tmp_path / "known.cif", [l12()], ids=["Cu3Au"])
    out = tmp_path / "out"
    rc = main(["relax", str(tmp_path / "cands.extxyz"), "--mlff", "emt", "--out", str(out), "--fmax", "0.02",
               "--competing-phases", str(tmp_path / "known.cif"), "--max-e-above-hull", "0.002", "--max-formation-energy", "0.5",
               "--reference-cache", str(tmp_path / "refs.json")])
    assert rc == 0
    assert "1 competing phases" in capsys.readouterr().out
    rows = {r["id"]: r for r in csv.DictReader(open(out / "relax_table.csv"))}
    assert abs(float(rows["L12"]["energy_above_hull"])) < 5e-4 and float(rows["B2"]["energy_above_hull"]) > 0.003
    assert rows["L12"]["passes_filter"] == "True" and rows["B2"]["passes_filter"] == "False"
    meta = json.loads((out / "relax_table.json").read_text())
    assert meta["max_energy_above_hull"] == 0.002 and "known.cif" in meta["competing_phases"]
    # bad input: a cut without phases, a missing phases file
    assert main(["relax", str(tmp_path / "cands.extxyz"), "--mlff", "emt", "--out", str(tmp_path / "o2"),
                 "--max-e-above-hull", "0.1"]) == 2
    assert "needs --competing-phases" in capsys.readouterr().err
    assert main(["relax", str(tmp_path / "cands.extxyz"), "--mlff", "emt", "--out", str(tmp_path / "o3"),
                 "--competing-phases", str(tmp_path / "nope.cif")]) == 2
    assert "nope.cif" in capsys.readouterr().err


def test_screen_config_per_target_thresholds(tmp_path):
    from dosmatgen.screen.config import load_screen_config

    cfg = tmp_path / "s.yaml"
    cfg.write_text("""
run: {dir: run}
targets:
  - {id: oxide, target: target-IrO2, num_atoms: [6], candidates_per_num_atoms: 2, filter: {max_formation_energy: -1.5}}
  - {id: alloy, target: target-Au3Ni, num_atoms: [4], candidates_per_num_atoms: 2}
relax:
  filter: {max_formation_energy: 0.0, max_energy_above_hull: 0.1}
""")
    c = load_screen_config(cfg)
    assert c.filters_for("oxide").max_formation_energy == -1.5 and c.filters_for("oxide").max_energy_above_hull == 0.1
    assert c.filters_for("alloy") == c.filters and c.filters.max_formation_energy == 0.0
    assert set(c.filters_by_target()) == {"oxide", "alloy"}
    cfg.write_text(cfg.read_text().replace("{max_formation_energy: -1.5}", "{min_distance: 1.0}"))
    with pytest.raises(InvalidRecordError, match=r"targets\[0\]\.filter\.min_distance: unknown key"):
        load_screen_config(cfg)


@pytest.mark.slow
def test_relax_shard_stores_the_energy_above_hull_and_applies_per_target_filters(tmp_path, relaxer_with_phases):
    """Run store column relax/energy_above_hull; with no competing phase in a candidate's chemical space the hull
    is the elements' alone, so E_hull = max(E_f, 0)."""
    from screen_helpers import small_store

    from dosmatgen.screen.baseline import load_random_sampler
    from dosmatgen.screen.stages import relax_shard, sample_shard

    _, relaxer = relaxer_with_phases
    store = small_store(tmp_path, n=6, shard_size=3)
    sampler = load_random_sampler(["Al", "Cu", "Ni"], 13.0, 1.8)
    sample_shard(store, "t0", 0, sampler)
    loose = FilterConfig(require_converged=False, min_distance=1.0)
    relax_shard(store, "t0", 0, relaxer, {"t0": FilterConfig(require_converged=False, min_distance=1.0, max_energy_above_hull=-1.0)})
    t = store.target("t0")
    eh, fe = t.column("relax/energy_above_hull", 0), t.column("relax/formation_energy", 0)
    ok = np.isfinite(fe)
    assert ok.any()
    np.testing.assert_allclose(eh[ok], np.maximum(fe[ok], 0.0), atol=1e-6)
    assert all(int(f) & Flag.ABOVE_HULL for f in t.column("relax/flags", 0))  # the target's cut (-1 eV) rejects all
    sample_shard(store, "t0", 1, sampler)
    relax_shard(store, "t0", 1, relaxer, loose)
    assert not any(int(f) & Flag.ABOVE_HULL for f in t.column("relax/flags", 1))


def test_screen_config_refuses_a_hull_cut_without_competing_phases(tmp_path):
    from dosmatgen.screen.config import load_screen_config

    cfg = tmp_path / "s.yaml"
    cfg.write_text("""
run: {dir: run}
targets:
  - {id: alloy, target: target-Au3Ni, num_atoms: [4], candidates_per_num_atoms: 2}
relax:
  loader: dosmatgen.screen.library_stages:load_mlff_relaxer
  options: {mlff: emt}
  filter: {max_energy_above_hull: 0.1}
""")
    with pytest.raises(InvalidRecordError, match="needs relax.options.competing_phases"):
        load_screen_config(cfg)
    cfg.write_text(cfg.read_text().replace("{mlff: emt}", "{mlff: emt, competing_phases: known.cif}"))
    assert load_screen_config(cfg).filters.max_energy_above_hull == 0.1
