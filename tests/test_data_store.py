"""Dataset store: round trip, split rule, scalers, corrupt/missing stores, torch dataset, bundled store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dosmatgen.data import schema as S
from dosmatgen.data.build import BuildOptions, build_dataset
from dosmatgen.data.bundled import bundled_dataset_path
from dosmatgen.data.sources import read_gpaw_npz
from dosmatgen.data.split import split_codes
from dosmatgen.data.store import DatasetStore
from dosmatgen.data.torch_dataset import CrystalDOSDataset
from dosmatgen.dos.featurize import site_features, total_features
from dosmatgen.dos.properties import derived_properties_batch
from dosmatgen.errors import StoreError

from store_fixture_helpers import write_synthetic_gpaw_npz

N = 24


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(input npz, store path) for N synthetic structures, built in parts of 5 records."""
    root = tmp_path_factory.mktemp("store")
    npz = root / "dataset.npz"
    write_synthetic_gpaw_npz(npz, n=N)
    out = root / "syn.zarr"
    summary = build_dataset("gpaw", [npz], out, BuildOptions(part_size=5, progress=False))
    assert summary.written and summary.num_stored == N and not summary.skipped
    return npz, out


def _copy(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / out.name
    shutil.copytree(out, dst)
    return dst


# ----------------------------------------------------------------------------------------- round trip
def test_round_trip_records_to_store(built):
    npz, out = built
    store = DatasetStore.open(out)
    records = [r for r in read_gpaw_npz(npz)]
    assert store.num_structures == N
    assert store.num_sites == sum(r.crystal.num_atoms for r in records)
    assert store.ids == [r.id for r in records]  # order of the input stream
    for i, rec in enumerate(records):
        c = store.crystal(i)
        assert c.equals(rec.crystal, atol=0.0), rec.id
        assert c.metadata["id"] == rec.id
        assert store.sources[i] == rec.source
        # features are stored as float16: equal to the featurizer's output up to float16 rounding
        np.testing.assert_array_equal(store.site_features(i), site_features(rec, sigma_ev=0.1).astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(store.total_features(i), total_features(rec).astype(np.float16).astype(np.float32))
    mem = store.to_memory()
    np.testing.assert_array_equal(mem.efermi, [r.efermi for r in records])
    np.testing.assert_array_equal(mem.energy, [r.energy for r in records])
    # metadata equal for every record (the settings, seconds here) is kept once in the attributes
    assert "settings" in store.info["common_metadata"] and "settings" not in json.loads(mem.metadata[0])
    assert store.metadata(0)["seconds"] == pytest.approx(1.5)
    assert json.loads(store.metadata(3)["settings"]) == {"xc": "PBE", "synthetic": True}


def test_properties_are_those_of_the_stored_features(built):
    store = DatasetStore.open(built[1])
    mem = store.to_memory()
    expected = derived_properties_batch(mem.total_dos)
    assert set(store.properties) == set(expected) and store.property_names == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(store.properties[name], values)


def test_scalers_fitted_on_train_split_and_inverse_exact(built):
    store = DatasetStore.open(built[1])
    mem = store.to_memory()
    train = mem.split_indices("train")
    site_train = mem.site_dos[mem.atom_indices(train)].astype(np.float64)
    sc = store.scalers
    np.testing.assert_allclose(sc["site"].mean, site_train.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sc["site"].std, site_train.std(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sc["total"].mean, mem.total_dos[train].astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)
    assert sc["site"].n_samples == site_train.shape[0] and sc["total"].n_samples == train.size
    assert store.info["scalers"]["fitted_on"] == "train"
    for i in range(store.num_structures):
        raw = store.site_features(i)
        scaled = store.site_features(i, scaled=True)
        np.testing.assert_allclose(sc["site"].inverse_transform(scaled), raw, rtol=0, atol=1e-5)
        raw_t = store.total_features(i)
        np.testing.assert_allclose(sc["total"].inverse_transform(store.total_features(i, scaled=True)), raw_t, rtol=0, atol=1e-5)
    # float64 path: transform then inverse returns the input to float64 rounding
    x = mem.site_dos.astype(np.float64)
    np.testing.assert_allclose(sc["site"].inverse_transform(sc["site"].transform(x)), x, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------- split rule
def test_split_depends_only_on_id():
    ids = [f"mp-{i}" for i in range(3000)]
    codes = split_codes(ids)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(ids))
    np.testing.assert_array_equal(split_codes([ids[i] for i in perm]), codes[perm])  # order-independent
    np.testing.assert_array_equal(split_codes(ids[:100]), codes[:100])  # count-independent
    frac = np.bincount(codes, minlength=3) / len(ids)
    np.testing.assert_allclose(frac, [0.6, 0.2, 0.2], atol=0.03)
    assert not np.array_equal(split_codes(ids, salt="other"), codes)
    with pytest.raises(ValueError):
        split_codes(ids, fractions=(0.5, 0.2, 0.2))


def test_store_split_matches_rule(built):
    store = DatasetStore.open(built[1])
    # the id-hash rule, except the val/test structures the build moved to train as twins of another split's
    expected = split_codes(store.ids)
    moved = {m["id"] for m in store.info["split_dedup"]["moves"]}
    expected[[i for i, rid in enumerate(store.ids) if rid in moved]] = 0
    np.testing.assert_array_equal(store.split, expected)
    sizes = store.split_sizes()
    assert sum(sizes.values()) == N
    assert store.info["counts"]["splits"] == sizes
    parts = [store.split_indices(s) for s in S.SPLIT_NAMES]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(N))


# ----------------------------------------------------------------------------------------- bad stores
def test_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no dataset store"):
        DatasetStore.open(tmp_path / "nothing.zarr")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        DatasetStore.open(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(StoreError, match="not a readable Zarr"):
        DatasetStore.open(tmp_path / "empty.zarr")


def test_foreign_and_wrong_schema_store(built, tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    g.create_array("x", shape=(3,), dtype="f4")
    with pytest.raises(StoreError, match="not a dosmatgen dataset store"):
        DatasetStore.open(tmp_path / "foreign.zarr")

    old = _copy(built[1], tmp_path)
    meta = json.loads((old / "zarr.json").read_text())
    meta["attributes"][S.ATTRS_KEY]["schema_version"] = 99
    (old / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="schema version 99"):
        DatasetStore.open(old)


def test_corrupt_store(built, tmp_path):
    broken = _copy(built[1], tmp_path)
    (broken / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a readable Zarr"):
        DatasetStore.open(broken)

    missing = _copy(built[1], tmp_path / "m")
    shutil.rmtree(missing / S.SITE_DOS)
    with pytest.raises(StoreError, match="site_dos"):
        DatasetStore.open(missing)

    garbage = _copy(built[1], tmp_path / "g")
    chunk_files = [p for p in (garbage / S.SITE_DOS).rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunk_files
    for p in chunk_files:
        p.write_bytes(b"\x00garbage" * 7)
    store = DatasetStore.open(garbage)  # metadata is intact
    with pytest.raises(StoreError, match="corrupt"):
        store.site_features(0)

    short = _copy(built[1], tmp_path / "s")
    meta = json.loads((short / S.ATOMIC_NUMBERS / "zarr.json").read_text())
    meta["shape"] = [meta["shape"][0] - 1]
    (short / S.ATOMIC_NUMBERS / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="atomic_numbers"):
        DatasetStore.open(short)


def test_out_of_range_index(built):
    store = DatasetStore.open(built[1])
    with pytest.raises(IndexError):
        store.crystal(N)


# ----------------------------------------------------------------------------------------- torch
def test_torch_dataset_and_loader(built):
    from torch_geometric.loader import DataLoader

    store = DatasetStore.open(built[1])
    sizes = store.split_sizes()
    datasets = {s: CrystalDOSDataset(store, split=s) for s in S.SPLIT_NAMES}
    assert {s: len(d) for s, d in datasets.items()} == sizes
    train = datasets["train"]
    d0 = train[0]
    i0 = int(d0.idx)
    assert i0 == int(store.split_indices("train")[0])
    n = int(store.num_atoms[i0])
    assert d0.atom_types.dtype == torch.long and d0.atom_types.shape == (n,)
    assert d0.frac_coords.shape == (n, 3) and d0.lattice.shape == (1, 3, 3) and d0.num_atoms.tolist() == [n]
    assert d0.site_dos.shape == (n, 400) and d0.site_dos.dtype == torch.float32 and d0.total_dos.shape == (1, 256)
    np.testing.assert_array_equal(d0.atom_types.numpy(), store.crystal(i0).atomic_numbers)
    np.testing.assert_allclose(d0.site_dos.numpy(), store.site_features(i0, scaled=True), atol=1e-5)
    # the train split is standardised: per-bin mean 0 over the training atoms
    site = torch.cat([d.site_dos for d in train])
    assert float(site.mean(0).abs().max()) < 1e-4
    raw = CrystalDOSDataset(store, split="train", scaled=False)
    np.testing.assert_allclose(raw[0].site_dos.numpy(), store.site_features(i0), atol=0)
    np.testing.assert_allclose(train.site_scaler.inverse_transform(d0.site_dos).numpy(), raw[0].site_dos.numpy(), atol=1e-4)

    batch = next(iter(DataLoader(train, batch_size=4, shuffle=False)))
    assert batch.num_graphs == 4 and batch.lattice.shape == (4, 3, 3) and batch.total_dos.shape == (4, 256)
    assert batch.site_dos.shape[0] == int(batch.num_atoms.sum()) == batch.atom_types.shape[0]

    with_props = CrystalDOSDataset(store, split="all", properties=["band_gap", "dos_fermi"])
    assert len(with_props) == N and with_props[3].y.shape == (1, 2)
    assert float(with_props[3].y[0, 1]) == pytest.approx(float(store.properties["dos_fermi"][3]))
    with pytest.raises(StoreError, match="no properties"):
        CrystalDOSDataset(store, properties=["nope"])


# ----------------------------------------------------------------------------------------- bundled
def test_bundled_store_opens_with_expected_counts():
    path = bundled_dataset_path()
    store = DatasetStore.open(path)
    assert store.num_structures == 3020 and store.num_sites == 12211
    assert store.has_dos and store.info["scalers"]["fitted_on"] == "train"
    # the id-hash split, then the builder's dedup: exactly the recorded twins moved, all into train
    hashed, moved = split_codes(store.ids), store.info["split_dedup"]["moves"]
    changed = np.flatnonzero(store.split != hashed)
    assert sorted(store.ids[k] for k in changed) == sorted(m["id"] for m in moved) and len(moved) == 19
    assert np.all(store.split[changed] == S.SPLIT_CODES["train"])
    assert store.split_sizes() == {"train": 1866, "val": 565, "test": 589}
    i = store.ids.index("target-IrO2")
    c = store.crystal(i)
    assert c.atomic_numbers[:2].tolist() == [77, 77] and c.num_atoms == 6
    assert store.site_features(i).shape == (6, 400)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size < 20 * 1024 * 1024
