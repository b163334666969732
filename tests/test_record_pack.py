"""Packing per-structure GPAW record files into one dataset-*.npz (dosmatgen.dft.record_pack, `dosmatgen data pack`)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from source_test_helpers import GPAW_SUBSET, assert_located, split

from dosmatgen.data.sources import read_gpaw_npz
from dosmatgen.dft.compute import completed_ids, compute_dos_dataset
from dosmatgen.dft.record_file import write_record_npz
from dosmatgen.dft.record_pack import pack_records, packed_ids, record_files
from dosmatgen.errors import InvalidRecordError


@pytest.fixture(scope="module")
def reference():
    return {r.id: r for r in split(read_gpaw_npz(GPAW_SUBSET / "dataset.npz"))[0]}


def _engine_folder(root, records, workers=None):
    """An engine output folder: the first records in root/records, the others in root/worker-1/records."""
    (root / "records").mkdir(parents=True)
    for i, r in enumerate(records):
        sub = root / "records" if workers is None or i < workers else root / "worker-1" / "records"
        sub.mkdir(parents=True, exist_ok=True)
        write_record_npz(r, sub / f"{r.id}.npz")
    return root


@pytest.mark.parametrize("dtype, rtol", [("float32", 0.0), ("float16", 1e-3)])
def test_pack_round_trips_through_the_gpaw_reader(tmp_path, reference, dtype, rtol):
    recs = list(reference.values())[:5]
    src = _engine_folder(tmp_path / "grow", recs, workers=3)
    assert len(record_files(src)) == 5
    out = tmp_path / "data" / "dataset-a.npz"
    summary = pack_records(record_files(src), out, dtype=dtype)
    assert summary.path == out and sorted(summary.ids) == sorted(r.id for r in recs)
    assert summary.num_sites == sum(r.crystal.num_atoms for r in recs)
    with np.load(out) as z:
        assert z["site_pdos"].dtype == np.dtype(dtype) and z["offsets"][-1] == summary.num_sites
    back, errors = split(read_gpaw_npz(out.parent))
    assert errors == [] and sorted(r.id for r in back) == sorted(r.id for r in recs)
    for b in back:
        ref = reference[b.id]
        assert b.site_dos.dtype == np.float32
        np.testing.assert_allclose(b.site_dos, ref.site_dos, rtol=rtol, atol=1e-6 if rtol else 0)
        np.testing.assert_allclose(b.total_dos, ref.total_dos, rtol=rtol, atol=1e-6 if rtol else 0)
        np.testing.assert_array_equal(b.crystal.frac_coords, ref.crystal.frac_coords)
        np.testing.assert_array_equal(b.crystal.atomic_numbers, ref.crystal.atomic_numbers)
        assert b.efermi == ref.efermi and b.source == ref.source and b.metadata["settings"] == ref.metadata["settings"]
    assert packed_ids(out.parent) == {r.id for r in recs}


def test_packs_and_loose_records_in_one_folder_are_read_together_and_counted_done(tmp_path, reference, monkeypatch):
    import os
    from pathlib import Path

    # the engine's workers are fresh interpreters: they import dft_fakes from this folder
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    recs = list(reference.values())[:6]
    folder = tmp_path / "gpaw-v2"
    folder.mkdir()
    src = _engine_folder(tmp_path / "grow", recs[:4])
    pack_records(record_files(src)[:2], folder / "dataset-1.npz")
    pack_records(record_files(src)[2:4], folder / "dataset-2.npz")
    (folder / "records").mkdir()
    write_record_npz(recs[4], folder / "records" / f"{recs[4].id}.npz")
    back, errors = split(read_gpaw_npz(folder))
    assert errors == [] and sorted(r.id for r in back) == sorted(r.id for r in recs[:5])
    done, failed = completed_ids(folder)
    assert done == {r.id for r in recs[:5]} and failed == set()

    # the engine driver skips packed ids: only the one new structure is computed
    from dft_fakes import FakeEngine

    items = [(r.id, r.crystal, r.source) for r in recs]
    summary = compute_dos_dataset(items, folder, FakeEngine(), progress=False)
    assert summary.skipped_done == 5 and summary.done == [recs[5].id]


def test_exclude_leaves_out_known_ids_and_nothing_is_written_when_all_are_known(tmp_path, reference):
    recs = list(reference.values())[:3]
    src = _engine_folder(tmp_path / "grow", recs)
    s = pack_records(record_files(src), tmp_path / "dataset-x.npz", exclude={recs[0].id})
    assert sorted(s.ids) == sorted(r.id for r in recs[1:]) and s.excluded == [recs[0].id]
    none = pack_records(record_files(src), tmp_path / "dataset-y.npz", exclude={r.id for r in recs})
    assert none.path is None and not (tmp_path / "dataset-y.npz").exists()


def _row_file(path, record, **changes):
    from dosmatgen.dft.record_file import record_to_arrays

    arrays = record_to_arrays(record)
    arrays.update(changes)
    np.savez(path, **arrays)


@pytest.mark.parametrize("case, problem", [
    ("grid", "energy grid differs"),
    ("settings", "settings differ"),
    ("duplicate", "duplicate id"),
    ("truncated", "cannot read record file"),
    ("missing", "missing keys"),
])  # fmt: skip
def test_bad_records_are_located_and_nothing_is_written(tmp_path, reference, case, problem):
    recs = list(reference.values())[:2]
    src = _engine_folder(tmp_path / "grow", recs[:1])
    bad = src / "records" / "zz-bad.npz"
    r = recs[1]
    if case == "grid":
        _row_file(bad, r, energy_grid=np.linspace(-5, 5, 401).astype(np.float32))
    elif case == "settings":
        _row_file(bad, r, settings=np.array(json.dumps({"xc": "LDA"})))
    elif case == "duplicate":
        _row_file(bad, recs[0])
    elif case == "truncated":
        write_record_npz(r, bad)
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        from dosmatgen.dft.record_file import record_to_arrays

        arrays = record_to_arrays(r)
        del arrays["efermi"]
        np.savez(bad, **arrays)
    out = tmp_path / "dataset-bad.npz"
    with pytest.raises(InvalidRecordError) as info:
        pack_records(record_files(src), out)
    err = info.value
    assert str(err.file).endswith("zz-bad.npz") and problem in err.problem
    if case in ("grid", "settings", "duplicate"):
        assert_located(err, file="zz-bad.npz", record=recs[0].id if case == "duplicate" else r.id, problem=problem)
    assert not out.exists() and list(tmp_path.glob(".dataset-bad.npz.tmp*")) == []


def test_corrupt_pack_is_reported_by_name(tmp_path, reference):
    folder = tmp_path / "gpaw-v2"
    folder.mkdir()
    (folder / "dataset-broken.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidRecordError) as info:
        packed_ids(folder)
    assert "dataset-broken.npz" in str(info.value)
    with pytest.raises(InvalidRecordError) as info:
        list(read_gpaw_npz(folder))
    assert "dataset-broken.npz" in str(info.value)


@pytest.mark.slow
def test_cli_pack_excludes_known_and_refuses_to_overwrite(tmp_path, reference):
    recs = list(reference.values())[:4]
    src = _engine_folder(tmp_path / "grow", recs, workers=2)
    data = tmp_path / "data"
    data.mkdir()
    pack_records(record_files(src)[:1], data / "dataset-old.npz")
    cmd = [sys.executable, "-m", "dosmatgen.cli.main", "data", "pack", str(src), "--out", str(data / "dataset-new.npz"), "--exclude", str(data)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "packed 3 structures" in run.stdout and "1 already known" in run.stdout
    assert packed_ids(data) == {r.id for r in recs}
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    bad_name = subprocess.run(cmd[:7] + [str(data / "grown.npz")], capture_output=True, text=True)
    assert bad_name.returncode != 0 and "dataset-NAME.npz" in bad_name.stderr
