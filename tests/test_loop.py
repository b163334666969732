"""``dosmatgen loop``: two rounds end to end on a tiny model with the analytic DFT engine, resume after a crash,
provenance, no train/test leak, the control (no fine-tuning), exploration picks and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from loop_helpers import train_loop_models, write_loop

from dosmatgen.errors import InvalidRecordError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return train_loop_models(tmp_path_factory.mktemp("loop-models"))


def cli(*args: str) -> subprocess.CompletedProcess:
    import os

    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "dosmatgen.cli.main", *args], capture_output=True, text=True, env=env)


def _weights(path: str) -> dict[str, torch.Tensor]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return payload.get("ema_state") or payload.get("model_state") or payload["state_dict"]


def _rounds(result: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("denoiser", "surrogate", "next_denoiser", "next_surrogate")}
            for r in result["rounds"]]


@pytest.fixture(scope="module")
def uninterrupted(models, tmp_path_factory):
    from dosmatgen.loop.driver import run_loop

    tmp = tmp_path_factory.mktemp("loop-a")
    return tmp, run_loop(write_loop(tmp, models), progress=False)


def test_two_rounds_end_to_end(uninterrupted):
    tmp, result = uninterrupted
    assert len(result["rounds"]) == 2
    for r, rep in enumerate(result["rounds"]):
        m = rep["metrics"]
        assert m["dft_requested"] == 3 and m["dft_done"] + m["dft_failed"] == 3
        assert m["dft_done"] >= 1 and 0.0 <= m["best_cosine"] <= 1.0
        assert rep["fine_tuned"] and Path(rep["next_denoiser"]).is_file() and Path(rep["next_surrogate"]).is_file()
        folder = tmp / "loop" / f"round-{r:02d}"
        for name in ("report.md", "report.json", "dft.json", "dos_overlay.png", "store.zarr"):
            assert (folder / name).exists(), name
        roles = [c["role"] for c in json.loads((folder / "dft.json").read_text())["candidates"]]
        assert roles == ["top", "top", "explore"]
    # round 1 samples with round 0's fine-tuned models, which differ from the starting ones
    r0, r1 = result["rounds"]
    assert r1["denoiser"] == r0["next_denoiser"] != r0["denoiser"]
    a, b = _weights(r0["denoiser"]), _weights(r0["next_denoiser"])
    assert any(not torch.equal(a[k], b[k]) for k in a)
    report = (tmp / "loop" / "report.md").read_text()
    assert "| 0 |" in report and "| 1 |" in report
    assert (tmp / "loop" / "dos_overlay_rounds.png").is_file() and (tmp / "loop" / "progress.png").is_file()


def test_store_records_carry_provenance_and_never_leak_into_test(uninterrupted, models):
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.loop.store_growth import TwinFinder

    tmp, result = uninterrupted
    base = DatasetStore.open(models["store"])
    grown = DatasetStore.open(tmp / "loop" / "round-01" / "store.zarr")
    done = [c for r in range(2) for c in json.loads((tmp / "loop" / f"round-{r:02d}" / "dft.json").read_text())["candidates"]
            if c["status"] == "done"]
    assert grown.num_structures == base.num_structures + len(done)
    assert grown.ids[: base.num_structures] == base.ids
    assert np.array_equal(grown.split[: base.num_structures], base.split)
    for i in range(base.num_structures, grown.num_structures):
        meta = grown.metadata(i)
        prov = meta["loop"] if "loop" in meta else json.loads(meta["metadata"])["loop"]
        assert prov["round"] in (0, 1) and prov["engine"] == "analytic"
        assert prov["engine_settings"]["code"] == "analytic (not DFT)" and prov["role"] in ("top", "explore")
    # the reported test split is the base store's; nothing trained on is in it or a twin of it
    test_ids = {base.ids[i] for i in base.split_indices("test")}
    train = set(grown.split_indices("train"))
    assert not test_ids & {grown.ids[i] for i in train}
    finder = TwinFinder([base.crystal(int(i)) for i in base.split_indices("test")], list(base.split_indices("test")))
    assert all(finder.twin(grown.crystal(int(i))) is None for i in train if i >= base.num_structures)
    # the scalers stay the base store's
    assert np.array_equal(grown.scalers["site"].mean, base.scalers["site"].mean)


def test_resume_after_a_crash_mid_round_equals_uninterrupted(uninterrupted, models, tmp_path, monkeypatch):
    import dosmatgen.loop.store_growth as growth
    from dosmatgen.loop.driver import run_loop

    _, expected = uninterrupted
    path = write_loop(tmp_path, models)
    real = growth.grow_store
    calls = {"n": 0}

    def crash_in_round_1(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # round 1: its screen and DFT are done, the store is not grown
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(growth, "grow_store", crash_in_round_1)
    with pytest.raises(RuntimeError, match="killed"):
        run_loop(path, progress=False)
    state = json.loads((tmp_path / "loop" / "round-01" / "state.json").read_text())
    assert set(state["done"]) == {"screen", "collect"}
    with pytest.raises(Exception, match="already holds a loop"):
        run_loop(path, progress=False)  # a second start without --resume is refused
    from dosmatgen.runstore import RunStore

    run1 = RunStore.open(tmp_path / "loop" / "round-01" / "screen", mode="r")
    finished = {(st, u): run1.manifest.done_info(st, "t", u)["time"] for st in ("sample", "dft") for u in run1.manifest.done_units(st, "t")}
    assert finished
    resumed = run_loop(path, resume=True, progress=False)
    assert _rounds(resumed) == _rounds(expected)
    for key in ("next_denoiser", "next_surrogate"):
        a, b = _weights(expected["rounds"][1][key]), _weights(resumed["rounds"][1][key])
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # finished work of round 1 (its sampled shards, its DFT) was not repeated
    assert {k: run1.manifest.done_info(k[0], "t", k[1])["time"] for k in finished} == finished


def test_control_spends_the_same_budget_without_fine_tuning(models, tmp_path):
    from dosmatgen.loop.driver import run_loop

    result = run_loop(write_loop(tmp_path, models, rounds=2, fine_tune=False, name="control"), progress=False)
    r0, r1 = result["rounds"]
    assert not r0["fine_tuned"] and r1["denoiser"] == r0["denoiser"] == models["denoiser"]
    assert r1["surrogate"] == models["surrogate"]
    assert r0["metrics"]["dft_requested"] == r1["metrics"]["dft_requested"] == 3
    # a new seed per round: the two rounds screened different candidates
    ids = [json.loads((tmp_path / "control" / f"round-{r:02d}" / "dft.json").read_text())["candidates"] for r in range(2)]
    assert [c["formula"] for c in ids[0]] != [c["formula"] for c in ids[1]] or \
           [c["row"] for c in ids[0]] != [c["row"] for c in ids[1]]


def test_a_zero_dft_budget_is_refused_before_anything_starts(models, tmp_path):
    from dosmatgen.loop.config import check_loop_config

    path = write_loop(tmp_path, models, top_k=0, explore=0)
    with pytest.raises(InvalidRecordError, match=r"dft\.top_k.*DFT budget per round.*is 0") as err:
        check_loop_config(path)
    assert str(path) in str(err.value)
    run = cli("loop", str(path))
    assert run.returncode == 2 and "DFT budget" in run.stderr and str(path) in run.stderr
    assert not (tmp_path / "loop").exists()


def test_an_unreadable_target_is_refused_before_anything_starts(models, tmp_path):
    bad = tmp_path / "target.csv"
    bad.write_text("energy,dos\nnot,a number\n")
    path = write_loop(tmp_path, models, target=str(bad))
    run = cli("loop", str(path))
    assert run.returncode == 2 and "target.csv" in run.stderr, run.stderr
    assert not (tmp_path / "loop").exists()
    missing = write_loop(tmp_path, models, target=str(tmp_path / "nope.csv"), name="loop2")
    run = cli("loop", str(missing))
    assert run.returncode == 2 and "nope.csv" in run.stderr, run.stderr
    assert not (tmp_path / "loop2").exists()


def test_a_record_twinned_with_a_test_structure_joins_test(models, tmp_path):
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.dft.analytic_engine import AnalyticEngine
    from dosmatgen.loop.store_growth import grow_store

    base = DatasetStore.open(models["store"])
    test_i = int(base.split_indices("test")[0])
    twin = base.crystal(test_i)
    shifted = type(twin)(twin.atomic_numbers, (twin.frac_coords + 0.25) % 1.0, twin.lattice * 1.01)
    other = type(twin)([26, 8, 8], [[0, 0, 0], [0.3, 0.3, 0.3], [0.7, 0.7, 0.7]], np.eye(3) * 4.0)  # a new composition
    engine = AnalyticEngine()
    recs = [engine.compute_dos(shifted, "new-twin", tmp_path), engine.compute_dos(other, "new-train", tmp_path)]
    prov = [{"round": 0}, {"round": 0}]
    g = grow_store(models["store"], recs, prov, tmp_path / "grown.zarr")
    grown = DatasetStore.open(g.path)
    assert grown.split[base.num_structures] == base.split[test_i]
    assert grown.split[base.num_structures + 1] == 0 and g.split_of_added == {"train": 1, "val": 0, "test": 1}
    assert g.twins == [{"id": "new-twin", "twin": base.ids[test_i], "split": "test"}]
    with pytest.raises(Exception, match="already in the store"):
        grow_store(g.path, recs, prov, tmp_path / "again.zarr")


def test_exploration_picks_the_far_and_diverse_points():
    from dosmatgen.loop.exploration import farthest_picks

    train = np.zeros((5, 2))
    pts = np.array([[0.1, 0.0], [5.0, 0.0], [5.1, 0.0], [0.0, 4.0]])
    picks, dist = farthest_picks(pts, train, 2)
    assert picks == [2, 3]  # the farthest, then the one farthest from both it and the training set
    assert dist[0] == pytest.approx(5.1) and dist[1] == pytest.approx(4.0)


def test_analytic_engine_depends_on_geometry_and_refuses_overlaps(tmp_path):
    from dosmatgen.crystal import Crystal
    from dosmatgen.dft.engine import DFTCalculationError, get_engine

    engine = get_engine("analytic")
    a = engine.compute_dos(Crystal([28, 79], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.0), "a", tmp_path)
    b = engine.compute_dos(Crystal([28, 79], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.3), "b", tmp_path)
    again = engine.compute_dos(Crystal([28, 79], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.0), "a", tmp_path)
    assert not np.allclose(a.site_dos, b.site_dos) and np.array_equal(a.site_dos, again.site_dos)
    with pytest.raises(DFTCalculationError, match="closer than"):
        engine.compute_dos(Crystal([28, 79], [[0, 0, 0], [0.01, 0, 0]], np.eye(3) * 3.0), "c", tmp_path)
