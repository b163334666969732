"""Ranking library: distances, site selection, the ranking order on constructed cases, tables, DFT comparison and
bad input. The predictor is a real baseline (per-element mean site DOS of a small synthetic store) or a tiny
untrained surrogate checkpoint — never a stand-in that knows the answer."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.dos.record import DOSRecord
from dosmatgen.dos.scaler import PerBinStandardScaler
from dosmatgen.errors import CheckpointError, DosmatgenError, InvalidRecordError
from dosmatgen.ranking import Candidate, DistanceSpec, SiteSelection, rank_candidates, site_distances
from dosmatgen.ranking.candidates import join_relaxation_table, read_relaxation_table
from dosmatgen.ranking.comparison import compare_to_dft, plot_comparison, write_comparison_csv
from dosmatgen.ranking.predictors import PerElementMeanSiteDOS, SurrogateSiteDOS
from dosmatgen.ranking.table import write_ranked_tables
from dosmatgen.targets import Target, target_from_store_site

from surrogate_fixture_helpers import synthetic_crystals

E = SITE_GRID.energies


def gauss(center: float, width: float = 0.8, height: float = 1.0) -> np.ndarray:
    return height * np.exp(-0.5 * ((E - center) / width) ** 2)


#: element -> centre (eV) of its site-DOS peak in the constructed store: well separated, so a per-element mean
#: predictor knows which element sits on a site (the surrogate fixture's store mixes Na and Mg on purpose)
PEAKS = {11: -6.0, 17: -3.0, 12: 0.0, 8: 3.0, 19: 6.0, 35: -8.0}


def write_element_store(path, n: int = 24):
    """Two-atom cells whose site DOS is a Gaussian at the element's PEAKS centre, shifted 0.3 eV per Å of lattice."""
    from dosmatgen.data.arrays import DatasetArrays
    from dosmatgen.data.store import write_store
    from dosmatgen.dos.grid import TOTAL_GRID

    pairs = [(11, 17), (12, 8), (19, 35)]
    crystals = [rocksalt(*pairs[i % 3], 3.8 + 0.4 * ((i * 5) % n) / n) for i in range(n)]
    site = np.concatenate([[gauss(PEAKS[int(z)] + 0.3 * (c.lattice[0, 0] - 4.0)) for z in c.atomic_numbers]
                           for c in crystals]).astype(np.float32)  # fmt: skip
    total = np.stack([np.interp(TOTAL_GRID.energies, E, site[2 * i : 2 * i + 2].mean(axis=0)) for i in range(n)]).astype(np.float32)
    split = np.array([(0, 0, 0, 1, 2)[i % 5] for i in range(n)], dtype=np.int8)
    offsets = np.arange(0, 2 * n + 1, 2)
    data = DatasetArrays(
        ids=[f"el-{i:03d}" for i in range(n)], sources=["constructed"] * n, offsets=offsets,
        atomic_numbers=np.concatenate([c.atomic_numbers for c in crystals]).astype(np.int16),
        frac_coords=np.concatenate([c.frac_coords for c in crystals]), lattice=np.stack([c.lattice for c in crystals]),
        energy=np.full(n, np.nan), efermi=np.zeros(n), split=split, site_dos=site, total_dos=total,
    )  # fmt: skip
    train_atoms = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in np.flatnonzero(split == 0)])
    scalers = {"site": PerBinStandardScaler().fit(site[train_atoms].astype(np.float64)).to_arrays(),
               "total": PerBinStandardScaler().fit(total[split == 0].astype(np.float64)).to_arrays()}  # fmt: skip
    attrs = {"grids": {"site": SITE_GRID.to_dict(), "total": TOTAL_GRID.to_dict()}, "provenance": "constructed ranking test store"}
    return write_store(path, data, attrs=attrs, scalers=scalers), crystals


@pytest.fixture(scope="module")
def element_store(tmp_path_factory):
    return write_element_store(tmp_path_factory.mktemp("rank") / "el.zarr")


@pytest.fixture(scope="module")
def store(element_store):
    return element_store[0]


@pytest.fixture(scope="module")
def baseline(store):
    return PerElementMeanSiteDOS(store)


def rocksalt(za: int, zb: int, a: float) -> Crystal:
    return Crystal([za, zb], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * a)


# ------------------------------------------------------------------------------------------ distances
def test_identical_dos_has_zero_distance_for_every_metric():
    t = gauss(-2.0)
    for spec in (DistanceSpec("mae"), DistanceSpec("cosine"), DistanceSpec("window", window_width=1.0),
                 DistanceSpec("window", window_range=(-1.0, 1.0))):  # fmt: skip
        assert site_distances(t[None], t, spec)[0] == pytest.approx(0.0, abs=1e-12)


def test_cosine_ignores_scale_and_mae_does_not():
    t = gauss(-2.0)
    assert site_distances(2 * t, t, DistanceSpec("cosine"))[0] == pytest.approx(0.0, abs=1e-12)
    assert site_distances(2 * t, t, DistanceSpec("mae"))[0] == pytest.approx(np.abs(t).mean())
    # no overlap at all -> cosine distance 1; an all-zero prediction -> 1
    assert site_distances(gauss(8.0, 0.3), gauss(-8.0, 0.3), DistanceSpec("cosine"))[0] == pytest.approx(1.0, abs=1e-6)
    assert site_distances(np.zeros(400), gauss(0.0), DistanceSpec("cosine"))[0] == 1.0


def test_window_metrics_weigh_energies_near_the_fermi_level():
    t = gauss(0.0) + gauss(-7.0)
    far_off = gauss(0.0) + gauss(-5.0)  # differs only far below E_F
    near_off = gauss(0.5) + gauss(-7.0)  # differs near E_F
    hard = DistanceSpec("window", window_range=(-2.0, 2.0))
    soft = DistanceSpec("window", window_width=1.5)
    assert site_distances(far_off, t, hard)[0] < 1e-4 < site_distances(near_off, t, hard)[0]
    assert site_distances(far_off, t, soft)[0] < site_distances(near_off, t, soft)[0]
    assert site_distances(far_off, t, DistanceSpec("mae"))[0] > site_distances(near_off, t, DistanceSpec("mae"))[0]


def test_scaled_mae_uses_the_scaler():
    rng = np.random.default_rng(0)
    rows = np.abs(rng.normal(size=(50, 400)))
    scaler = PerBinStandardScaler().fit(rows)
    p, t = rows[0], rows[1]
    expected = np.abs((p - t) / scaler.std).mean()
    assert site_distances(p, t, DistanceSpec("mae"), scaler)[0] == pytest.approx(expected, rel=1e-4)


def test_bad_metric_settings_and_grids_are_rejected():
    with pytest.raises(InvalidRecordError, match="unknown distance metric"):
        DistanceSpec("l2")
    with pytest.raises(InvalidRecordError, match="exactly one"):
        DistanceSpec("window")
    with pytest.raises(InvalidRecordError, match="no bin"):
        DistanceSpec("window", window_range=(20.0, 30.0))
    with pytest.raises(InvalidRecordError, match="400 values per site"):
        site_distances(np.ones((2, 300)), np.ones(400), DistanceSpec("mae"))


# ------------------------------------------------------------------------------------------ sites
def test_site_selection_by_element_indices_and_reference():
    c = Crystal([79, 28, 79, 28], [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]], np.eye(3) * 4)
    assert SiteSelection(element="Ni").sites_of(c) == [1, 3]
    assert SiteSelection(indices=(0, 7)).sites_of(c) == [0]
    assert SiteSelection(all_sites=True).sites_of(c) == [0, 1, 2, 3]
    target = Target("t", gauss(0.0), reference=c, reference_sites=(3,))
    assert SiteSelection.for_target(target).element == "Ni"
    with pytest.raises(InvalidRecordError, match="no reference site"):
        SiteSelection.for_target(Target("file", gauss(0.0)))
    with pytest.raises(InvalidRecordError, match="exactly one"):
        SiteSelection(indices=(0,), element="Ni")
    with pytest.raises(InvalidRecordError, match="unknown element"):
        SiteSelection(element="Xq")


# ------------------------------------------------------------------------------------------ ranking
def test_candidate_identical_to_the_target_ranks_first(element_store, baseline):
    store, crystals = element_store
    target = target_from_store_site(store, "el-000", 0)  # the Na site of a Na-Cl cell
    source = crystals[0]
    cands = [
        Candidate("MgO", rocksalt(12, 8, 4.0)),
        Candidate("KBr", rocksalt(19, 35, 4.2)),
        Candidate("same-as-target", source),
        Candidate("ClNa-swapped", rocksalt(17, 11, 4.1)),  # the Na site is site 1 here
    ]
    result = rank_candidates(cands, target.features, baseline, spec=DistanceSpec("mae"), selection=SiteSelection(all_sites=True),
                             top_k=3, scaler=baseline.scaler)  # fmt: skip
    ids = [r.candidate.id for r in result.ranked]
    # both Na-containing cells get the per-element Na mean at their Na site, so they tie and keep input order
    assert ids[:2] == ["same-as-target", "ClNa-swapped"] and set(ids[2:]) == {"MgO", "KBr"}
    assert [r.best_site for r in result.ranked[:2]] == [0, 1]
    d = [r.distance for r in result.ranked]
    assert d == sorted(d) and result.scaled
    assert [r.rank for r in result.top] == [1, 2, 3] and len(result.top) == 3
    # the distance is the scaled MAE between the store's Na mean and the target
    na_mean = baseline([source])[0][0]
    assert result.ranked[0].distance == pytest.approx(site_distances(na_mean, target.features, DistanceSpec("mae"), baseline.scaler)[0])


def test_element_selection_flags_candidates_without_the_element(store, baseline):
    target = target_from_store_site(store, "el-001", 0)  # Mg site of a Mg-O cell
    cands = [Candidate("NaCl", rocksalt(11, 17, 4.0)), Candidate("MgO", rocksalt(12, 8, 4.0))]
    result = rank_candidates(cands, target.features, baseline, selection=SiteSelection.for_target(target), top_k=5)
    assert [r.candidate.id for r in result.ranked] == ["MgO", "NaCl"]
    assert result.top[0].candidate.id == "MgO" and len(result.top) == 1
    unscored = result.ranked[1]
    assert not unscored.scored and unscored.rank == 0 and "no Mg site" in unscored.flags


def test_formation_energy_threshold_and_relaxation_table(tmp_path, store, baseline):
    target = target_from_store_site(store, "el-000", 0)
    table = tmp_path / "relax.csv"
    table.write_text("id,formation_energy_eV_per_atom,status\na,-0.5,converged\nb,0.7,not_converged\n")
    cands = join_relaxation_table([Candidate("a", rocksalt(11, 17, 4.0)), Candidate("b", rocksalt(11, 17, 4.3)),
                                   Candidate("c", rocksalt(11, 17, 4.6))], read_relaxation_table(table))  # fmt: skip
    assert cands[0].formation_energy == -0.5 and cands[1].flags == ("status=not_converged",)
    assert cands[2].formation_energy is None and cands[2].flags == ("not in relaxation table",)
    result = rank_candidates(cands, target.features, baseline, selection=SiteSelection(element="Na"), top_k=5,
                             max_formation_energy=0.0)  # fmt: skip
    by_id = {r.candidate.id: r for r in result.ranked}
    assert not by_id["b"].scored and any("formation energy 0.700 > 0" in f for f in by_id["b"].flags)
    assert by_id["a"].scored and by_id["c"].scored  # unknown formation energies are kept
    bad = tmp_path / "no_id.csv"
    bad.write_text("name,e\nx,1\n")
    with pytest.raises(InvalidRecordError, match="no 'id' column"):
        read_relaxation_table(bad)


def test_tables_are_written_as_csv_and_markdown(tmp_path, store, baseline):
    target = target_from_store_site(store, "el-000", 0)
    cands = [Candidate(f"c{i}", c) for i, c in enumerate(synthetic_crystals(9))]
    result = rank_candidates(cands, target.features, baseline, selection=SiteSelection(all_sites=True), top_k=4,
                             scaler=baseline.scaler, target_name=target.name, predictor_name=baseline.describe())  # fmt: skip
    paths = write_ranked_tables(result, tmp_path / "out")
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["rank", "id", "formula", "n_atoms", "sites", "best_site", "distance", "formation_energy_eV_per_atom", "flags"]
    dist = [float(r["distance"]) for r in rows]
    assert dist == sorted(dist) and rows[0]["sites"] == "0:Na;1:Cl" and rows[0]["n_atoms"] == "2"
    assert len(list(csv.DictReader(open(paths["all"])))) == 9
    md = paths["md"].read_text()
    assert "mae (scaled features)" in md and md.count("\n| ") == 5 and "el-000:site0" in md


def test_predictor_with_wrong_shapes_is_a_clear_error(store):
    target = target_from_store_site(store, "el-000", 0)
    c = [Candidate("a", rocksalt(11, 17, 4.0))]
    with pytest.raises(DosmatgenError, match="expected \\(2, 400\\)"):
        rank_candidates(c, target.features, lambda cs: [np.ones((1, 400)) for _ in cs], selection=SiteSelection(all_sites=True))
    with pytest.raises(DosmatgenError, match="400 values per site"):
        rank_candidates(c, target.features, lambda cs: [np.ones((2, 256)) for _ in cs], selection=SiteSelection(all_sites=True))
    with pytest.raises(InvalidRecordError, match="expected 400 values"):
        rank_candidates(c, np.ones(300), lambda cs: [np.ones((2, 400))], selection=SiteSelection(all_sites=True))
    with pytest.raises(InvalidRecordError, match="on the model grid"):
        Target("bad", np.ones(401))


# ------------------------------------------------------------------------------------------ surrogate
def _tiny_checkpoint(path, store, target="site"):
    import torch

    from dosmatgen.data.store import DatasetStore
    from dosmatgen.dos.grid import TOTAL_GRID
    from dosmatgen.surrogate.checkpoint import save_checkpoint
    from dosmatgen.surrogate.config import SurrogateConfig
    from dosmatgen.surrogate.model import DOSSurrogate

    torch.manual_seed(0)
    model = DOSSurrogate(SurrogateConfig.tiny(target=target))
    s = DatasetStore.open(store)
    return save_checkpoint(path, model, s.scalers[target], SITE_GRID if target == "site" else TOTAL_GRID)


def test_surrogate_predictor_ranks_with_its_own_scaler(tmp_path, store):
    from dosmatgen.surrogate.predict import SurrogatePredictor

    ckpt = _tiny_checkpoint(tmp_path / "site.pt", store)
    pred = SurrogateSiteDOS(ckpt)
    target = target_from_store_site(store, "el-002", 1)
    cands = [Candidate(f"c{i}", c) for i, c in enumerate(synthetic_crystals(6))]
    result = rank_candidates(cands, target.features, pred, selection=SiteSelection(indices=(0,)), top_k=6, scaler=pred.scaler)
    ref = SurrogatePredictor.from_checkpoint(ckpt)
    t_scaled = ref.scaler.transform(target.features[None].astype(np.float64))[0]
    for r in result.ranked:
        expected = np.abs(ref.predict_scaled([r.candidate.crystal])[0][0] - t_scaled).mean()
        assert r.distance == pytest.approx(expected, rel=1e-4)


def test_missing_or_wrong_surrogate_checkpoint_is_a_clear_error(tmp_path, store):
    with pytest.raises(CheckpointError, match="no surrogate checkpoint"):
        SurrogateSiteDOS(tmp_path / "missing.pt")
    total = _tiny_checkpoint(tmp_path / "total.pt", store, target="total")
    with pytest.raises(CheckpointError, match="total-DOS surrogate: rank with it by property targets"):
        SurrogateSiteDOS(total)


# ------------------------------------------------------------------------------------------ DFT comparison
def test_comparison_with_a_dft_record(tmp_path, baseline):
    from pathlib import Path

    from dosmatgen.dft.record_file import read_record_npz
    from dosmatgen.dos.featurize import site_features

    rec = read_record_npz(Path(__file__).parent / "data" / "gpaw_reference" / "rocksalt-CaO.npz")
    feats = site_features(rec)
    ca = rec.crystal.symbols.index("Ca")
    target = Target("CaO-Ca", feats[ca])
    comp = compare_to_dft(rec, target.features, SiteSelection(all_sites=True))  # no predictor: site chosen by DFT
    assert comp.site == ca and comp.distances()["mae_dft_vs_target"] == pytest.approx(0.0, abs=1e-9)
    comp2 = compare_to_dft(rec, target.features, SiteSelection(element="O"), baseline)  # the constructed O mean, not CaO
    assert comp2.element == "O" and comp2.surrogate is not None and comp2.distances()["mae_dft_vs_target"] > 0.01
    paths = plot_comparison(comp2, tmp_path / "cmp" / "CaO", target_name="CaO-Ca")
    assert all(p.stat().st_size > 1000 for p in paths)
    rows = list(csv.DictReader(open(write_comparison_csv([comp, comp2], tmp_path / "cmp.csv"))))
    assert rows[0]["mae_surrogate_vs_target"] == "" and float(rows[1]["mae_dft_vs_surrogate"]) > 0
    with pytest.raises(InvalidRecordError, match="no Ni site"):
        compare_to_dft(rec, target.features, SiteSelection(element="Ni"))
