"""The DFT batch driver, record files and engine registry, without a DFT code (a fake engine runs in the workers)."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.dft import compute as compute_mod
from dosmatgen.dft.compute import FAILURES_FILE, LOCK_FILE, compute_dos_dataset, completed_ids, read_failures, record_name, record_path
from dosmatgen.dft.engine import EngineUnavailableError, get_engine, register_engine
from dosmatgen.dft.record_file import RECORD_KEYS, read_record_npz, write_record_npz
from dosmatgen.dft.standardize import standardize_crystal
from dosmatgen.errors import DosmatgenError, InvalidRecordError

TESTS = Path(__file__).parent
REFERENCE = TESTS / "data" / "gpaw_reference" / "rocksalt-CaO.npz"


@pytest.fixture
def fake_engine_path(monkeypatch):
    """Workers are fresh interpreters: put this folder on their PYTHONPATH so they can import dft_fakes."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    from dft_fakes import FakeEngine

    return FakeEngine


def rocksalt(a: float = 4.8, z=(20, 8)) -> Crystal:
    lat = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    return Crystal(np.array(z), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), lat)


def overlapping() -> Crystal:
    return Crystal(np.array([14, 14]), np.array([[0, 0, 0], [0.01, 0, 0]]), 4.0 * np.eye(3))


def test_record_name_is_the_id_when_safe_and_unique_otherwise():
    assert record_name("perov5-18517") == "perov5-18517"
    a, b = record_name("sub/x y"), record_name("sub_x y")
    assert "/" not in a and " " not in a and a != b
    assert record_name(".hidden") != ".hidden"


def test_record_file_round_trip_has_the_dataset_keys_and_dtypes(tmp_path, fake_engine_path):
    record = fake_engine_path().compute_dos(rocksalt(), "rs", tmp_path)
    path = write_record_npz(record, tmp_path / "rs.npz")
    assert not list(tmp_path.glob(".*tmp*"))
    back = read_record_npz(path)
    assert back.id == "rs" and back.crystal.equals(record.crystal)
    np.testing.assert_allclose(back.site_dos, record.site_dos, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(back.total_dos, record.total_dos, rtol=1e-6, atol=1e-7)
    assert back.efermi == 1.5 and back.metadata["n_ibz_kpoints"] == 1
    with np.load(path) as ours, np.load(REFERENCE) as ref:  # a row of the shared dataset
        assert sorted(ours.files) == sorted(ref.files) == sorted(RECORD_KEYS)
        for k in ref.files:
            assert ours[k].dtype.kind == ref[k].dtype.kind, k
            assert ours[k].ndim == ref[k].ndim, k


def test_reading_a_truncated_record_names_the_file(tmp_path, fake_engine_path):
    path = write_record_npz(fake_engine_path().compute_dos(rocksalt(), "rs", tmp_path), tmp_path / "rs.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidRecordError, match="rs.npz"):
        read_record_npz(path)


def test_engine_registry_and_gpaw_settings_match_the_dataset():
    with pytest.raises(DosmatgenError, match="unknown DFT engine"):
        get_engine("nope")
    engine = get_engine("gpaw")
    assert get_engine("gpaw", **engine.config()).config() == engine.config()
    with np.load(REFERENCE) as ref:
        dataset_settings = json.loads(str(ref["settings"]))
    ours = engine.settings()
    assert {k: ours[k] for k in dataset_settings} == dataset_settings


def test_missing_gpaw_gives_an_install_hint(monkeypatch, tmp_path):
    from dosmatgen.dft import gpaw_engine

    monkeypatch.setattr(gpaw_engine, "gpaw_version", lambda: None)
    with pytest.raises(EngineUnavailableError, match="libxc-dev"):
        gpaw_engine.GPAWEngine().compute_dos(rocksalt(), "x", tmp_path)


def test_standardize_snaps_distorted_primitive_cells_but_not_supercells():
    c = rocksalt()
    distorted = Crystal(c.atomic_numbers, c.frac_coords + [[0, 0, 0], [0.004, -0.003, 0.002]], c.lattice * 1.001)
    snapped, ok = standardize_crystal(distorted)
    assert ok and snapped.num_atoms == 2
    assert abs(snapped.volume - distorted.volume) < 0.01 * distorted.volume
    d = snapped.to_pymatgen().get_distance(0, 1)
    assert abs(d - 0.5 * 4.8 * 1.001) < 1e-6  # ideal rocksalt restored
    conventional = Crystal(np.array([29] * 4), np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]), 3.6 * np.eye(3))
    same, ok = standardize_crystal(conventional)
    assert not ok and same is conventional


def _orphans(out: Path) -> list[str]:
    """Live processes whose command line names a job file under ``out``."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(out) in cmd and "dosmatgen.dft.worker" in cmd:
                found.append(pid)
    return found


@pytest.mark.slow
def test_batch_records_each_failure_kind_and_resumes(tmp_path, fake_engine_path):
    FakeEngine = fake_engine_path
    out = tmp_path / "out"
    behaviours = {"bad": "fail", "bug": "raise", "boom": "crash", "hang": "sleep"}
    items = [("ok1", rocksalt()), ("bad", rocksalt()), ("bug", rocksalt()), ("boom", rocksalt()), ("hang", rocksalt()),
             ("overlap", overlapping()), ("ok1", rocksalt()), ("weird id/x", rocksalt(), "mysource")]  # fmt: skip
    s = compute_dos_dataset(items, out, FakeEngine(behaviours), time_limit_s=3.0, progress=False)
    assert sorted(s.done) == ["ok1", "weird id/x"] and s.duplicates == 1
    kinds = {e["id"]: e["kind"] for e in s.failed}
    assert kinds == {"bad": "not_converged", "bug": "engine_error", "boom": "crashed", "hang": "timeout", "overlap": "invalid_input"}
    assert "6" in next(e["error"] for e in s.failed if e["id"] == "boom")  # SIGABRT
    assert {k: v["kind"] for k, v in read_failures(out).items()} == kinds
    assert not _orphans(out)
    assert (out / "work" / "hang" / "fake.log").exists()  # the engine's log is kept
    rec = read_record_npz(record_path(out, "weird id/x"))
    assert rec.id == "weird id/x" and rec.source == "mysource"
    assert not list((out / "records").glob(".*"))

    # a second run skips everything; nothing is recomputed
    mtime = record_path(out, "ok1").stat().st_mtime_ns
    s2 = compute_dos_dataset(items, out, FakeEngine(behaviours), time_limit_s=3.0, progress=False)
    assert (len(s2.done), len(s2.failed), s2.skipped_done, s2.skipped_failed) == (0, 0, 2, 5)
    assert record_path(out, "ok1").stat().st_mtime_ns == mtime

    # retrying the failures with a fixed engine recovers them and removes them from failures.jsonl
    s3 = compute_dos_dataset(items, out, FakeEngine({"bad": "fail"}), time_limit_s=10.0, retry_failed=True, progress=False)
    assert sorted(s3.done) == ["boom", "bug", "hang"]
    assert sorted(read_failures(out)) == ["bad", "overlap"]
    done, failed = completed_ids(out)
    assert failed == {"bad", "overlap"} and {"ok1", "boom", "bug", "hang"} <= done


def test_a_torn_failure_line_is_ignored(tmp_path, fake_engine_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / FAILURES_FILE).write_text('{"id": "a", "kind": "timeout", "error": "x"}\n{"id": "b", "ki')
    assert list(read_failures(out)) == ["a"]
    s = compute_dos_dataset([("a", rocksalt()), ("b", rocksalt())], out, fake_engine_path(), progress=False)
    assert s.done == ["b"] and s.skipped_failed == 1


def test_two_runs_on_one_folder_are_refused(tmp_path, fake_engine_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DosmatgenError, match="in use"):
            compute_dos_dataset([("a", rocksalt())], out, fake_engine_path(), progress=False)


def test_cli_reads_cif_csv_and_extxyz_and_reports_bad_records(tmp_path, fake_engine_path, capsys):
    from dosmatgen.cli.data_compute import add_compute_parser
    from dosmatgen.io.structure_files import crystal_to_cif, write_extxyz

    register_engine("fake", "dft_fakes:FakeEngine")
    (tmp_path / "cifs").mkdir()
    (tmp_path / "cifs" / "CaO.cif").write_text(crystal_to_cif(rocksalt(), "CaO"))
    (tmp_path / "cifs" / "broken.cif").write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n")
    cif = crystal_to_cif(rocksalt(5.0, (12, 8)), "MgO").replace('"', '""')
    (tmp_path / "p.csv").write_text(f'material_id,cif\n77,"{cif}"\n')
    write_extxyz(tmp_path / "s.extxyz", [rocksalt(5.6, (11, 17))], ["NaCl"])
    parser = argparse.ArgumentParser()
    add_compute_parser(parser.add_subparsers())
    out = tmp_path / "out"
    argv = ["compute", "--engine", "fake", str(tmp_path / "cifs"), str(tmp_path / "p.csv"), str(tmp_path / "s.extxyz"),
            "--out", str(out), "--id-prefix", "t-", "--no-progress"]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert "3 computed, 0 failed" in captured.out and "1 unreadable input records" in captured.out
    assert "broken" in captured.err
    assert sorted(p.stem for p in (out / "records").glob("*.npz")) == ["t-77", "t-CaO", "t-NaCl"]
    args = parser.parse_args(argv)
    args.func(args)
    assert "0 computed, 0 failed, 3 skipped (already done)" in capsys.readouterr().out
