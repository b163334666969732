"""The design's crystal-level evaluation (paper Table 1 and Table 5 analogues): dataset phases as an MLFF hull,
S.U.N., the scoring rule, the thermoelectric subset of the CDOSGen check, and an end-to-end run on a tiny
generator."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from design_fixture_helpers import gap_dos, train_tiny_total

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError


def l12(a: float = 3.75) -> Crystal:
    return Crystal(np.array([79, 29, 29, 29]), np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]), a * np.eye(3))


def b2(a: float = 3.1) -> Crystal:
    return Crystal(np.array([29, 79]), np.array([[0, 0, 0], [.5, .5, .5]]), a * np.eye(3))


def fcc(z: int, a: float) -> Crystal:
    return Crystal(np.array([z]), np.zeros((1, 3)), a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]))


def arrays(crystals: list[Crystal]):
    from dosmatgen.data.arrays import DatasetArrays

    n = len(crystals)
    return DatasetArrays(
        ids=[f"s{i}" for i in range(n)], sources=["test"] * n,
        offsets=np.concatenate([[0], np.cumsum([c.num_atoms for c in crystals])]),
        atomic_numbers=np.concatenate([c.atomic_numbers for c in crystals]),
        frac_coords=np.concatenate([c.frac_coords for c in crystals]), lattice=np.stack([c.lattice for c in crystals]),
        energy=np.zeros(n), efermi=np.zeros(n), split=np.zeros(n, dtype=np.int8))


class CountingRelaxer:
    def __init__(self, inner):
        self.inner, self.mlff, self.seen = inner, inner.mlff, 0

    def run(self, crystals):
        self.seen += len(crystals)
        return self.inner.run(crystals)


@pytest.fixture(scope="module")
def emt():
    from dosmatgen.relax import RelaxSettings, get_mlff
    from dosmatgen.relax.batched_fire import BatchedRelaxer

    mlff = get_mlff("emt")
    return mlff, BatchedRelaxer(mlff, RelaxSettings(fmax=0.02, max_steps=300, batch_size=8))


def test_dataset_phases_relax_only_the_chemical_system_once_and_cache_it(tmp_path, emt):
    from dosmatgen.relax.dataset_phases import DatasetPhases
    from dosmatgen.relax.hull import energy_above_hull
    from dosmatgen.relax.references import ElementalReferences

    mlff, inner = emt
    data = arrays([l12(), fcc(29, 3.61), fcc(28, 3.52), Crystal(np.array([28, 29]), np.array([[0, 0, 0], [.5, .5, .5]]), 2.9 * np.eye(3))])
    relaxer = CountingRelaxer(inner)
    cache = tmp_path / "phases.json"
    phases = DatasetPhases(data, relaxer, cache_path=cache)
    with pytest.raises(InvalidRecordError, match="not relaxed"):
        phases.for_elements({29, 79})
    assert phases.ensure([{29, 79}]) == 2 and relaxer.seen == 2  # Cu3Au and Cu; not Ni or NiCu
    assert phases.ensure([{29, 79}, {29}]) == 0 and relaxer.seen == 2
    assert sorted(c.atomic_numbers.size for c, _ in phases.for_elements({29, 79})) == [1, 4]
    # a new object reads the cache instead of relaxing again
    again = DatasetPhases(data, CountingRelaxer(inner), cache_path=cache)
    assert again.ensure([{29, 79}]) == 0 and again.entries == phases.entries
    with pytest.raises(InvalidRecordError, match="computed with"):
        DatasetPhases(data, inner, cache_path=cache, cache_key="another-model@1")
    # B2 CuAu lies above the hull of L1_2 Cu3Au and the elements (EMT), Cu3Au on it
    refs = ElementalReferences(mlff, cache_path=tmp_path / "refs.json")
    r_b2, r_l12 = inner.run([b2(), l12()])
    competing = phases.for_elements({29, 79})
    assert energy_above_hull(r_b2.relaxed, r_b2.energy_relaxed, competing, refs) > 1e-3
    assert energy_above_hull(r_l12.relaxed, r_l12.energy_relaxed, competing, refs) < 1e-3


def test_sun_counts_stable_unique_novel_over_all_generated():
    from dosmatgen.metrics.sun import sun

    s = sun([l12(), l12(), b2(), None], [0.0, 0.05, 0.0, math.nan], reference=[b2()])
    assert s.stable == [True, True, True, False]
    assert s.unique == [True, False, True, False]  # the second L1_2 repeats the first; None is nothing
    assert s.novel == [True, True, False, False]  # B2 is in the reference set
    assert s.sun == [True, False, False, False]
    rates = s.rates()
    assert rates["sun"] == 0.25 and rates["stable"] == 0.75 and rates["n"] == 4
    assert sun([l12()], [0.11], reference=[]).stable == [False]  # above the 0.1 eV/atom threshold
    with pytest.raises(ValueError):
        sun([l12()], [0.0, 0.0], reference=[])


def test_scoring_counts_missing_crystals_as_misses_and_uses_absolute_tolerance_at_zero():
    from dosmatgen.dos_sampler.evaluate import score as score_properties

    props = {"band_gap": np.array([2.0, 2.19, 2.5, np.nan]), "dos_ef": np.array([0.0, 0.09, 0.2, np.nan])}
    s = score_properties(props, {"band_gap": 2.0, "dos_ef": 0.0})
    assert s["band_gap"]["hit"] == 0.5 and s["band_gap"]["n_finite"] == 3
    assert s["band_gap"]["mae"] == pytest.approx((0.0 + 0.19 + 0.5) / 3)
    assert s["dos_ef"]["hit"] == 0.5  # |0.09| <= 0.1 absolute; 0.2 is not


def test_thermoelectric_subset_and_filter_pass_rate_on_hand_made_spectra():
    from dosmatgen.design.cdosgen_check import pair_metrics, repeated_derangement, select_subset

    te = [gap_dos(g) for g in (0.5, 0.8)]
    te[1][:40] *= 3.0  # a different shape from te[0]
    dos = np.stack([gap_dos(0.0), *te, gap_dos(2.0)])
    assert select_subset(dos, "thermoelectric").tolist() == [False, True, True, False]
    assert select_subset(dos, "all").all()
    with pytest.raises(ValueError, match="unknown subset"):
        select_subset(dos, "superconductor")
    perm = repeated_derangement(3, 2, seed=0)
    assert sorted(perm.tolist()) == list(range(6)) and all(perm[r] // 2 != r // 2 for r in range(6))
    cond = np.repeat(np.stack(te), 2, axis=0)
    pred = cond.copy()
    pred[1] = gap_dos(0.0)  # one crystal of the first structure is a metal: it fails the filter
    m = pair_metrics(cond, pred, repeated_derangement(2, 2, seed=0), repeats=2, te_filter=True)
    assert m["te_filter_pass"]["matched"]["mean"] == 0.75
    assert m["te_filter_pass"]["matched"]["n_groups"] == 2  # the bootstrap resamples structures, not rows
    assert "te_filter_pass" not in pair_metrics(cond, pred, repeated_derangement(2, 2, seed=0), repeats=2)


@pytest.mark.slow
def test_crystal_evaluation_runs_end_to_end_on_a_tiny_generator(tmp_path, monkeypatch):
    import dosmatgen.relax.dataset_phases as dp
    from dosmatgen.design.crystal_evaluation import evaluate_design, format_table

    class FirstPhases(dp.DatasetPhases):  # the hull of the first 40 dataset crystals only: the test stays fast
        def __init__(self, arrays, relaxer, cache_path=None, indices=None, cache_key=None):
            super().__init__(arrays, relaxer, cache_path, np.arange(40), cache_key)

    monkeypatch.setattr(dp, "DatasetPhases", FirstPhases)

    class StayPut:  # "relaxes" every crystal to itself with a made-up energy; the real relaxer is tested elsewhere
        def __init__(self):
            from dosmatgen.relax import get_mlff

            self.mlff = get_mlff("lj")

        def run(self, crystals):
            from dosmatgen.relax.result import RelaxResult

            return [RelaxResult(i, c, c, -1.0 * c.num_atoms, -1.0 * c.num_atoms, 1, True, "converged", fmax=0.0)
                    for i, c in enumerate(crystals)]

    ckpt = train_tiny_total(tmp_path / "tiny")
    out = tmp_path / "eval"
    r = evaluate_design(n=3, out=out, generator=ckpt, settings=["dataset DOS"], relaxer=StayPut())
    s = r["settings"]["dataset DOS"]
    assert s["crystals"] == 3 and s["conditioning"]["rows"] == 3
    assert set(s["scores_relaxed"]) == {"band_gap", "dos_ef", "n_ef"} and 0 <= s["sun"]["sun"] <= 1
    assert set(s["filter_pass_relaxed"]) == {"tcm", "tcm1", "tcm2"}
    assert s["sun"]["n"] == 3 and r["mlff"].startswith("lj")
    saved = json.loads((out / "crystal_evaluation.json").read_text())
    assert saved["settings"]["dataset DOS"]["crystals"] == 3 and saved["competing_phases"]["failed"] == 0
    per = json.loads((out / "structures" / "dataset_DOS.json").read_text())
    assert len(per["stable"]) == len(per["e_hull"]) == 3
    assert "| dataset DOS |" in format_table(r)
    with pytest.raises(ValueError, match="unknown settings"):
        evaluate_design(n=1, generator=ckpt, settings=["no such setting"])


def test_filter_pass_counts_missing_crystals_as_fails():
    from dosmatgen.design.crystal_evaluation import filter_pass

    e = gap_dos(0.0).copy()
    tcm = np.where((np.arange(256) > 50) & (np.arange(256) < 100), 0.0, 1.0)  # a 3.8 eV gap below E_F, metallic at E_F
    rows = np.stack([tcm, gap_dos(0.0), np.full(256, np.nan), e])
    p = filter_pass(rows)
    assert p["tcm"] == 0.25 and p["tcm1"] == 0.25 and p["tcm2"] == 0.0  # its conduction band runs to +10 eV: type 1
