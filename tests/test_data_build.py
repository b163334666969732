"""Dataset builder: interrupted builds resume without duplicates or gaps; bad records are skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest

import dosmatgen.data.build as build_mod
import dosmatgen.data.store as store_mod
from dosmatgen.crystal import Crystal
from dosmatgen.data import sources
from dosmatgen.data.build import BuildOptions, build_dataset, staging_path
from dosmatgen.data.staging import finished_parts
from dosmatgen.data.store import DatasetStore
from dosmatgen.errors import InvalidRecordError, StoreError
from dosmatgen.io.structure_files import crystal_to_cif, write_extxyz

from store_fixture_helpers import synthetic_crystal, synthetic_record, write_synthetic_gpaw_npz

OPTS = dict(part_size=4, progress=False)


class Crash(RuntimeError):
    """Stands in for a killed process."""


def _crash_after(monkeypatch, k: int) -> list[int]:
    """Make the (k+1)-th part write raise Crash; return the list of part indices written."""
    written: list[int] = []
    real = build_mod.write_part

    def flaky(staging, part):
        if len(written) == k:
            raise Crash(f"killed while writing part {part.index}")
        written.append(part.index)
        return real(staging, part)

    monkeypatch.setattr(build_mod, "write_part", flaky)
    return written


def _assert_same_store(a, b):
    sa, sb = DatasetStore.open(a), DatasetStore.open(b)
    ma, mb = sa.to_memory(), sb.to_memory()
    assert ma.ids == mb.ids
    for name in ("offsets", "atomic_numbers", "frac_coords", "lattice", "site_dos", "total_dos", "split", "energy"):
        np.testing.assert_array_equal(getattr(ma, name), getattr(mb, name), err_msg=name)


# ------------------------------------------------------------------------------------- interruption
def test_interrupted_build_resumes_without_duplicates_or_gaps(tmp_path, monkeypatch):
    npz = tmp_path / "dataset.npz"
    ids = write_synthetic_gpaw_npz(npz, n=18)  # 5 parts of 4 records (last part 2)
    reference = tmp_path / "reference.zarr"
    build_dataset("gpaw", [npz], reference, BuildOptions(**OPTS))

    out = tmp_path / "resumed.zarr"
    written = _crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    assert written == [0, 1]
    assert not out.exists()
    assert finished_parts(staging_path(out)) == {0, 1}
    # a writer killed mid-write leaves only a temporary file, which a rerun ignores and removes
    (staging_path(out) / "part-000002.npz.tmp-deadbeef").write_bytes(b"half a part")

    monkeypatch.undo()
    summary = build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    assert summary.parts_total == 5 and summary.parts_reused == 2
    assert summary.num_read == 18 and summary.num_stored == 18 and not summary.skipped
    assert not staging_path(out).exists()
    store = DatasetStore.open(out)
    assert store.ids == ids  # every record once, in input order
    assert len(set(store.ids)) == store.num_structures
    _assert_same_store(out, reference)


def test_crash_during_consolidation_leaves_no_store_and_rerun_completes(tmp_path, monkeypatch):
    npz = tmp_path / "dataset.npz"
    ids = write_synthetic_gpaw_npz(npz, n=9)
    out = tmp_path / "x.zarr"

    def boom(src, dst):
        raise Crash("killed before the rename")

    monkeypatch.setattr(store_mod, "_replace_dir", boom)
    with pytest.raises(Crash):
        build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    assert not out.exists()
    assert finished_parts(staging_path(out)) == {0, 1, 2}
    assert not list(tmp_path.glob("x.zarr.tmp-*"))  # the half-written store was removed
    monkeypatch.undo()
    summary = build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    assert summary.parts_reused == 3
    assert DatasetStore.open(out).ids == ids


def test_staging_of_other_inputs_is_discarded(tmp_path, monkeypatch):
    a, b = tmp_path / "a" / "dataset.npz", tmp_path / "b" / "dataset.npz"
    write_synthetic_gpaw_npz(a, n=8, prefix="a")
    ids_b = write_synthetic_gpaw_npz(b, n=8, prefix="b")
    out = tmp_path / "s.zarr"
    _crash_after(monkeypatch, 1)
    with pytest.raises(Crash):
        build_dataset("gpaw", [a], out, BuildOptions(**OPTS))
    monkeypatch.undo()
    summary = build_dataset("gpaw", [b], out, BuildOptions(**OPTS))
    assert summary.parts_reused == 0
    assert DatasetStore.open(out).ids == ids_b


# ------------------------------------------------------------------------------------- overwrite, duplicates
def test_existing_store_needs_overwrite(tmp_path):
    npz = tmp_path / "dataset.npz"
    write_synthetic_gpaw_npz(npz, n=5)
    out = tmp_path / "o.zarr"
    build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    with pytest.raises(StoreError, match="already exists"):
        build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    npz2 = tmp_path / "two" / "dataset.npz"
    ids2 = write_synthetic_gpaw_npz(npz2, n=3, start=50)
    build_dataset("gpaw", [npz2], out, BuildOptions(overwrite=True, **OPTS))
    assert DatasetStore.open(out).ids == ids2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("o.zarr")] == ["o.zarr"]


def test_duplicate_ids_across_inputs_are_skipped(tmp_path):
    a, b = tmp_path / "a" / "dataset.npz", tmp_path / "b" / "dataset.npz"
    ids_a = write_synthetic_gpaw_npz(a, n=6)
    ids_b = write_synthetic_gpaw_npz(b, n=6, start=3)  # ids 3..8: 3, 4, 5 repeat
    summary = build_dataset("gpaw", [a, b], tmp_path / "d.zarr", BuildOptions(**OPTS))
    store = DatasetStore.open(tmp_path / "d.zarr")
    assert store.ids == ids_a + ids_b[3:]
    dup = [s for s in summary.skipped if "duplicate" in s.problem]
    assert sorted(s.record for s in dup) == ids_b[:3]
    assert summary.num_read == 12 and summary.num_stored == 9


# ------------------------------------------------------------------------------------- bad records
def _bad_records():
    """(record or error, expected words in the skip message) pairs; the readers' own checks are bypassed."""
    good = [synthetic_record(i) for i in range(5)]
    e = good[0].energies
    overlap = Crystal(np.array([11, 17]), np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]]), 4.0 * np.eye(3))
    bad = [
        (synthetic_record(10, site_dos=good[0].site_dos[:, :, :300]), "site DOS has shape"),
        (synthetic_record(11, total_dos=np.full(e.size, np.nan)), "NaN"),
        (synthetic_record(12, site_dos=-good[0].site_dos), "negative"),
        (synthetic_record(13, efermi=None), "Fermi level"),
        (synthetic_record(14, crystal=Crystal(np.zeros(0, int), np.zeros((0, 3)), 4.0 * np.eye(3)), site_dos=np.zeros((0, 3, e.size))), "empty structure"),
        (synthetic_record(15, crystal=overlap), "on top of each other"),
        (synthetic_record(16, site_dos=None, total_dos=e * 0 + 1.0), "no site DOS"),
    ]
    try:  # an unknown element cannot even become a Crystal: readers yield the located error
        Crystal(np.array([11, 150]), np.zeros((2, 3)), 4.0 * np.eye(3))
    except InvalidRecordError as err:
        bad.append((err.located(file="input.json", record="rec-0017"), "unknown element"))
    return good, bad


def test_bad_records_are_skipped_and_counted(tmp_path, monkeypatch):
    good, bad = _bad_records()
    stream = [bad[0][0], good[0], *[b for b, _ in bad[1:4]], good[1], good[2], *[b for b, _ in bad[4:]], good[3], good[4]]

    def fake_reader(path, **kw):
        yield from stream

    monkeypatch.setitem(sources.SOURCES, "fake", fake_reader)
    out = tmp_path / "bad.zarr"
    summary = build_dataset("fake", ["input.json"], out, BuildOptions(**OPTS))
    assert summary.written
    assert summary.num_read == len(stream) and summary.num_stored == 5 and len(summary.skipped) == len(bad)
    for (item, words), skipped in zip(bad, summary.skipped):
        rid = item.record if isinstance(item, InvalidRecordError) else item.id
        assert skipped.record == rid
        assert words in skipped.problem, (words, skipped.problem)
    report = summary.report()
    assert "skipped 8" in report and "[record rec-0010]" in report and "input.json [record rec-0017]" in report
    store = DatasetStore.open(out)
    assert store.ids == [g.id for g in good]
    # nothing half-written: every per-atom array has exactly the atoms of the stored records
    assert store.num_sites == sum(g.crystal.num_atoms for g in good)
    assert store.to_memory().site_dos.shape == (store.num_sites, 400)


def test_nothing_valid_writes_no_store(tmp_path, monkeypatch):
    _, bad = _bad_records()
    monkeypatch.setitem(sources.SOURCES, "fake", lambda path, **kw: iter([b for b, _ in bad]))
    out = tmp_path / "none.zarr"
    summary = build_dataset("fake", ["x"], out, BuildOptions(**OPTS))
    assert not summary.written and summary.num_stored == 0 and len(summary.skipped) == len(bad)
    assert not out.exists() and not staging_path(out).exists()
    assert "nothing built" in summary.report()


def test_unreadable_input_is_counted_and_other_inputs_still_build(tmp_path):
    npz = tmp_path / "dataset.npz"
    ids = write_synthetic_gpaw_npz(npz, n=4)
    (tmp_path / "broken.npz").write_bytes(b"this is not a zip")
    summary = build_dataset("gpaw", [tmp_path / "broken.npz", tmp_path / "missing.npz", npz], tmp_path / "u.zarr", BuildOptions(**OPTS))
    assert summary.num_stored == 4 and DatasetStore.open(tmp_path / "u.zarr").ids == ids
    files = sorted(s.file for s in summary.skipped)
    assert files == sorted([str(tmp_path / "broken.npz"), str(tmp_path / "missing.npz")])


# ------------------------------------------------------------------------------------- structure-only
def test_structure_only_sources(tmp_path):
    crystals = [synthetic_crystal(i) for i in range(5)]
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, c in enumerate(crystals):
        (folder / f"s{i}.cif").write_text(crystal_to_cif(c, f"s{i}"))
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a 4.0\nthis is not a CIF loop\n")
    out = tmp_path / "cif.zarr"
    summary = build_dataset("cif", [folder], out, BuildOptions(**OPTS))
    assert summary.num_stored == 5 and not summary.has_dos
    assert len(summary.skipped) == 1 and "broken.cif" in summary.skipped[0].message
    store = DatasetStore.open(out)
    assert not store.has_dos and store.info["has_dos"] is False and store.properties == {}
    with pytest.raises(StoreError, match="has_dos = false"):
        store.site_features(0)
    mem = store.to_memory()
    assert mem.site_dos is None and np.all(np.isnan(mem.efermi))
    by_id = dict(zip(store.ids, range(store.num_structures)))
    for i, c in enumerate(crystals):  # CIF keeps species and lattice parameters, not the site order
        got = store.crystal(by_id[f"s{i}"]).to_pymatgen()
        assert got.matches(c.to_pymatgen(), scale=False)

    xyz = tmp_path / "s.extxyz"
    write_extxyz(xyz, crystals, [f"x{i}" for i in range(5)])
    build_dataset("extxyz", [xyz], tmp_path / "x.zarr", BuildOptions(**OPTS))
    sx = DatasetStore.open(tmp_path / "x.zarr")
    assert sx.ids == [f"x{i}" for i in range(5)]
    for i, c in enumerate(crystals):
        assert sx.crystal(i).equals(c, atol=1e-6)

    from dosmatgen.data.torch_dataset import CrystalDOSDataset

    d = CrystalDOSDataset(sx, split="all")
    assert len(d) == 5 and "site_dos" not in d[0]


def test_unreadable_staged_part_is_rebuilt(tmp_path, monkeypatch):
    npz = tmp_path / "dataset.npz"
    ids = write_synthetic_gpaw_npz(npz, n=10)
    out = tmp_path / "r.zarr"
    _crash_after(monkeypatch, 2)
    with pytest.raises(Crash):
        build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    monkeypatch.undo()
    (staging_path(out) / "part-000001.npz").write_bytes(b"disk error")
    summary = build_dataset("gpaw", [npz], out, BuildOptions(**OPTS))
    assert summary.parts_reused == 1 and summary.num_stored == 10
    assert DatasetStore.open(out).ids == ids
