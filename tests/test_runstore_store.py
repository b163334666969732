"""Run store: layout, shard ownership, atomic manifest, concurrent writers, crash + resume, per-shard seeds."""

from __future__ import annotations

import json
import multiprocessing as mp

import numpy as np
import pytest
from screen_helpers import small_layout, small_store

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError, StoreError
from dosmatgen.runstore import RunStore, TargetPlan, shard_seed
from dosmatgen.screen.baseline import load_random_sampler
from dosmatgen.screen.stages import sample_shard


def _sample_shards(root: str, shards: list[int]) -> None:
    store = RunStore.open(root)
    sampler = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
    for s in shards:
        sample_shard(store, "t0", s, sampler)


def test_zarr_shards_are_exactly_run_shards(tmp_path):
    store = small_store(tmp_path, n=10, shard_size=4)
    g = store._group["targets/t0"]
    for name in ("sample/num_atoms", "sample/lattice", "relax/flags", "rank/score"):
        assert g[name].shards[0] == 4 and g[name].shape[0] == 12  # 3 shards, padded
    for name in ("sample/atomic_numbers", "sample/frac_coords", "relax/frac_coords"):
        assert g[name].shards[0] == 4 * 4 and g[name].shape[0] == 12 * 4
    assert g["dft/site_dos"].chunks[0] == 1  # one chunk per DFT job
    t = store.target("t0")
    assert [t.shard_rows(i) for i in range(3)] == [(0, 4), (4, 8), (8, 10)]


def test_write_read_roundtrip_and_padding(tmp_path):
    t = small_store(tmp_path, n=10).target("t0")
    rng = np.random.default_rng(0)
    crystals = [Crystal([13, 29], rng.random((2, 3)), np.eye(3) * 4), None]
    t.write_sampled(2, crystals, seed=7)
    back = t.read_crystals("sample", 2)
    assert back[1] is None and back[0].equals(crystals[0])
    assert list(t.column("sample/seed", 2)) == [7, 7]
    with pytest.raises(StoreError, match="has 2 candidates"):
        t.write_sampled(2, crystals[:1], seed=7)
    with pytest.raises(InvalidRecordError, match="max_atoms"):
        t.write_sampled(2, [Crystal([1] * 5, rng.random((5, 3)), np.eye(3) * 9), None], seed=1)


def test_missing_corrupt_and_mismatched_stores(tmp_path):
    with pytest.raises(StoreError, match="no run store"):
        RunStore.open(tmp_path / "nothing")
    store = small_store(tmp_path / "run", n=10)
    with pytest.raises(StoreError, match="shard_size"):
        RunStore.create(tmp_path / "run", small_layout(shard_size=5), [TargetPlan("t0", np.resize([2, 3], 10))])
    with pytest.raises(StoreError, match="different candidate plan"):
        RunStore.create(tmp_path / "run", small_layout(), [TargetPlan("t0", np.resize([2, 4], 10))])
    meta = store.root / "store.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] = 99
    meta.write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="schema version 99"):
        RunStore.open(store.root)
    meta.write_text("{not json")
    with pytest.raises(StoreError, match="corrupt run store"):
        RunStore.open(store.root)
    with pytest.raises(StoreError, match="would delete"):
        RunStore.open(store.root, mode="w")
    with pytest.raises(StoreError, match="target id"):
        TargetPlan("bad/id", np.array([2]))


@pytest.mark.slow
def test_concurrent_writers_on_different_shards_lose_nothing(tmp_path):
    small_store(tmp_path, n=12 * 4, shard_size=4)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_sample_shards, args=(str(tmp_path), list(range(i, 12, 3)))) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    t = RunStore.open(tmp_path).target("t0")
    assert t.pending("sample") == []
    crystals = t.read_crystals()
    assert len(crystals) == 48 and all(c is not None for c in crystals)
    assert list(t.column("sample/num_atoms")) == list(np.resize([2, 3], 48))
    # every shard has its own seed in every row: nothing was overwritten by another writer
    seeds = t.column("sample/seed")
    assert all((seeds[4 * s : 4 * s + 4] == t.shard_seed(s)).all() for s in range(12))
    assert {t.store.manifest.done_info("sample", "t0", s)["unit"] for s in range(12)} == set(range(12))


def test_crash_mid_run_then_resume_gives_no_duplicates_or_gaps(tmp_path):
    store = small_store(tmp_path, n=10)
    good = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
    calls = []

    def crashing(target, num_atoms, seed):
        calls.append(seed)
        if len(calls) == 2:
            raise RuntimeError("node died")
        return good(target, num_atoms, seed)

    with pytest.raises(RuntimeError):
        for s in range(3):
            sample_shard(store, "t0", s, crashing)
    t = store.target("t0")
    assert t.pending("sample") == [1, 2]
    # a shard written but never marked (crash between data and marker) is redone wholly
    t.write_sampled(1, [None] * 4, seed=0)
    for s in t.pending("sample"):
        sample_shard(store, "t0", s, good)
    assert t.pending("sample") == []
    assert sum(sample_shard(store, "t0", s, good) for s in range(3)) == 0  # rerun skips everything
    reference = small_store(tmp_path / "ref", n=10)
    for s in range(3):
        sample_shard(reference, "t0", s, good)
    got, want = t.read_crystals(), reference.target("t0").read_crystals()
    assert len(got) == 10 and all(a.equals(b) for a, b in zip(got, want))


def test_seeds_depend_only_on_run_target_and_shard(tmp_path):
    assert shard_seed(1, "t0", 3) == shard_seed(1, "t0", 3)
    assert len({shard_seed(1, "t0", s) for s in range(100)} | {shard_seed(2, "t0", 0), shard_seed(1, "t1", 0)}) == 102
    # one writer doing all shards vs two writers interleaved: identical candidates
    one = small_store(tmp_path / "one", n=16)
    _sample_shards(str(one.root), [0, 1, 2, 3])
    two = small_store(tmp_path / "two", n=16)
    _sample_shards(str(two.root), [3, 1])
    _sample_shards(str(two.root), [2, 0])
    a, b = one.target("t0").read_crystals(), two.target("t0").read_crystals()
    assert all(x.equals(y) for x, y in zip(a, b))


def test_manifest_markers_are_atomic_files(tmp_path):
    store = small_store(tmp_path, n=4)
    m = store.manifest
    m.mark_done("sample", "t0", 0, n=4)
    assert m.is_done("sample", "t0", 0) and m.done_info("sample", "t0", 0)["n"] == 4
    assert m.record_failure("dft", "t0", 1, "boom") == 1 and m.record_failure("dft", "t0", 1, "boom") == 2
    m.mark_done("dft", "t0", 1)
    assert m.failures("dft", "t0") == []
    assert not list((tmp_path / "manifest").rglob("*.tmp"))
    (tmp_path / "manifest" / "sample" / "t0" / "0.json").write_text("{")
    with pytest.raises(StoreError, match="corrupt manifest"):
        m.done_info("sample", "t0", 0)
