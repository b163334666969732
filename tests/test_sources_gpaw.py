"""The GPAW dataset reader (dos-gpaw-v1 layout): dataset.npz and engine output folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from source_test_helpers import GPAW_SUBSET, assert_located, one_error, split

from dosmatgen.data.sources import SOURCES, read_gpaw_npz
from dosmatgen.dos.grid import GPAW_V1_GRID
from dosmatgen.errors import InvalidRecordError

SUBSET_SIZE = 12


def _arrays() -> dict[str, np.ndarray]:
    with np.load(GPAW_SUBSET / "dataset.npz") as z:
        return {k: z[k] for k in z.files}


def _row(arrays: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Structure ``i`` of a flat dataset as the arrays of one engine record file (N = 1)."""
    lo, hi = arrays["offsets"][i], arrays["offsets"][i + 1]
    out = {k: arrays[k][i : i + 1] for k in ("ids", "sources", "num_atoms", "lattice", "total_dos", "energy", "efermi",
                                              "n_electrons", "n_ibz_kpoints", "seconds")}  # fmt: skip
    out.update(offsets=np.array([0, hi - lo]), energy_grid=arrays["energy_grid"], settings=arrays["settings"])
    for k in ("atomic_numbers", "frac_coords", "site_pdos"):
        out[k] = arrays[k][lo:hi]
    return out


def test_reads_every_structure_of_the_subset_with_correct_shapes_and_metadata():
    records, errors = split(read_gpaw_npz(GPAW_SUBSET))
    assert len(records) == SUBSET_SIZE
    arrays = _arrays()
    assert [r.id for r in records] == [str(x) for x in arrays["ids"]]
    for i, r in enumerate(records):
        n = int(arrays["num_atoms"][i])
        assert r.crystal.num_atoms == n
        assert r.site_dos.shape == (n, 3, 401) and r.channels == ("s", "p", "d")
        assert r.total_dos.shape == (401,)
        assert np.allclose(r.energies, GPAW_V1_GRID.energies, atol=1e-5)  # already relative to E_F
        assert r.efermi == arrays["efermi"][i] and r.energy == arrays["energy"][i]
        assert r.source == str(arrays["sources"][i])
        assert r.metadata["n_ibz_kpoints"] == int(arrays["n_ibz_kpoints"][i])
        assert json.loads(r.metadata["settings"])["xc"] == "PBE"
        assert np.array_equal(r.site_dos, arrays["site_pdos"][arrays["offsets"][i] : arrays["offsets"][i + 1]])
    by_id = {r.id: r for r in records}
    assert by_id["target-Au3Ni"].crystal.atomic_numbers[0] == 28  # README: site 0 is Ni
    assert by_id["target-Au3Ni"].source == "paper-demo-target"
    assert by_id["target-IrO2"].crystal.atomic_numbers[:2].tolist() == [77, 77]  # sites 0 and 1 are Ir
    # the failures listed next to the dataset are reported as skipped records, located in failures.jsonl
    assert sorted(e.record for e in errors) == ["dcdft-Ar", "mattergen-mattergen-dft_mag_density-Fe6CoH"]
    assert_located(errors[0], file="failures.jsonl", record="dcdft-Ar", problem="GPAW calculation failed: no Fermi level")


def test_file_input_ids_filter_and_registry():
    assert SOURCES["gpaw"] is read_gpaw_npz
    records, errors = split(read_gpaw_npz(GPAW_SUBSET / "dataset.npz"))
    assert len(records) == SUBSET_SIZE and errors == []  # failures.jsonl belongs to a folder input
    records, errors = split(read_gpaw_npz(GPAW_SUBSET, ids=["target-IrO2", "dcdft-Ar"]))
    assert [r.id for r in records] == ["target-IrO2"] and [e.record for e in errors] == ["dcdft-Ar"]
    records, errors = split(read_gpaw_npz(GPAW_SUBSET, include_failures=False))
    assert len(records) == SUBSET_SIZE and errors == []


def test_engine_output_folder_reads_records_and_failures(tmp_path):
    arrays = _arrays()
    (tmp_path / "records").mkdir()
    for i in (0, 1, 4):
        np.savez(tmp_path / "records" / f"{arrays['ids'][i]}.npz", **_row(arrays, i))
    (tmp_path / "records" / ".B2-x.npz.tmp-123").write_bytes(b"half")  # an engine temporary: ignored
    failures = [
        {"id": "dcdft-Ar", "error": "no Fermi level"},
        {"id": str(arrays["ids"][4]), "error": "Timeout"},  # retried later and succeeded: not reported
        {"id": "L12-X", "error": "first try"},
        {"id": "L12-X", "error": "second try"},  # the last entry of an id counts
    ]
    (tmp_path / "failures.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failures))
    records, errors = split(read_gpaw_npz(tmp_path))
    assert sorted(r.id for r in records) == sorted(str(arrays["ids"][i]) for i in (0, 1, 4))
    ref = {r.id: r for r in read_gpaw_npz(GPAW_SUBSET / "dataset.npz")}
    for r in records:
        assert r.crystal.equals(ref[r.id].crystal, atol=0)
        assert np.array_equal(r.site_dos, ref[r.id].site_dos) and np.array_equal(r.total_dos, ref[r.id].total_dos)
    assert [(e.record, e.problem) for e in errors] == [
        ("dcdft-Ar", "GPAW calculation failed: no Fermi level"),
        ("L12-X", "GPAW calculation failed: second try"),
    ]


def test_reads_files_written_by_the_engine_record_writer(tmp_path):
    from dosmatgen.dft.record_file import write_record_npz

    ref = [r for r in read_gpaw_npz(GPAW_SUBSET / "dataset.npz")][:2]
    (tmp_path / "records").mkdir()
    for r in ref:
        write_record_npz(r, tmp_path / "records" / f"{r.id}.npz")
    records, errors = split(read_gpaw_npz(tmp_path))
    assert errors == [] and [r.id for r in records] == sorted(r.id for r in ref)
    back = {r.id: r for r in records}
    for r in ref:
        assert np.allclose(back[r.id].site_dos, r.site_dos) and back[r.id].efermi == r.efermi


def _write_bad_records(folder, arrays):
    """One good record plus one record per bad-input case; returns {file stem: expected problem}."""
    (folder / "records").mkdir()
    np.savez(folder / "records" / "good.npz", **_row(arrays, 4))  # B2-AlGa
    cases = {}

    def bad(stem, problem, **changes):
        row = _row(arrays, 4)
        row["ids"] = np.array([stem])
        row.update(changes)
        np.savez(folder / "records" / f"{stem}.npz", **row)
        cases[stem] = problem

    row = _row(arrays, 4)
    bad("short-dos", "site DOS has shape", site_pdos=row["site_pdos"][:, :, :300])
    bad("nan-dos", "NaN", total_dos=np.where(np.arange(401) == 7, np.nan, row["total_dos"]))
    bad("negative-dos", "negative values", site_pdos=row["site_pdos"] - 1.0)
    bad("unknown-element", "unknown element", atomic_numbers=np.array([13, 0], dtype=np.int16))
    bad("no-fermi", "Fermi level", efermi=np.array([np.nan]))
    bad("overlap", "atoms on top of each other", frac_coords=np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]]))
    bad("empty", "empty structure", num_atoms=np.array([0]), offsets=np.array([0, 0]),
        atomic_numbers=np.zeros(0, np.int16), frac_coords=np.zeros((0, 3)), site_pdos=np.zeros((0, 3, 401), np.float32))  # fmt: skip
    row = _row(arrays, 4)
    del row["efermi"]
    np.savez(folder / "records" / "no-efermi-key.npz", **row)
    cases["no-efermi-key"] = "missing required array(s) ['efermi']"
    (folder / "records" / "truncated.npz").write_bytes((folder / "records" / "good.npz").read_bytes()[:500])
    cases["truncated"] = "corrupt or unreadable .npz"
    return cases


def test_every_bad_record_in_an_engine_folder_is_located_and_the_good_one_loads(tmp_path):
    cases = _write_bad_records(tmp_path, _arrays())
    records, errors = split(read_gpaw_npz(tmp_path))
    assert [r.id for r in records] == ["B2-AlGa"]
    assert len(errors) == len(cases)
    by_record = {e.record: e for e in errors}
    for stem, problem in cases.items():
        assert_located(by_record[stem], file=f"records/{stem}.npz", record=stem, problem=problem)


def test_bad_rows_in_a_dataset_npz_are_located_and_others_load(tmp_path):
    arrays = _arrays()
    ids = [str(x) for x in arrays["ids"]]
    i_nan, i_neg, i_fermi = ids.index("B2-AlGa"), ids.index("rocksalt-AgO"), ids.index("dcdft-S")
    arrays["total_dos"][i_nan, 10] = np.nan
    lo = arrays["offsets"][i_neg]
    arrays["site_pdos"][lo, 1, 50] = -3.0
    arrays["efermi"][i_fermi] = np.inf
    i_z = ids.index("fluorite-BaF2")
    arrays["atomic_numbers"][arrays["offsets"][i_z]] = 120
    np.savez(tmp_path / "dataset.npz", **arrays)
    records, errors = split(read_gpaw_npz(tmp_path / "dataset.npz"))
    assert len(records) == SUBSET_SIZE - 4
    by_record = {e.record: e for e in errors}
    assert_located(by_record["B2-AlGa"], file="dataset.npz", record="B2-AlGa", problem="total DOS contains NaN")
    assert_located(by_record["rocksalt-AgO"], file="dataset.npz", record="rocksalt-AgO", problem="negative values")
    assert_located(by_record["dcdft-S"], file="dataset.npz", record="dcdft-S", problem="Fermi level")
    assert_located(by_record["fluorite-BaF2"], file="dataset.npz", record="fluorite-BaF2", problem="unknown element")


def test_duplicate_ids_across_dataset_and_records_are_reported(tmp_path):
    shutil.copy(GPAW_SUBSET / "dataset.npz", tmp_path / "dataset.npz")
    (tmp_path / "records").mkdir()
    np.savez(tmp_path / "records" / "again.npz", **_row(_arrays(), 0))
    records, errors = split(read_gpaw_npz(tmp_path))
    assert len(records) == SUBSET_SIZE
    assert_located(one_error(errors), file="again.npz", record=str(_arrays()["ids"][0]), problem="duplicate id")


def test_unusable_inputs_raise(tmp_path):
    with pytest.raises(InvalidRecordError, match="no such file"):
        list(read_gpaw_npz(tmp_path / "missing"))
    with pytest.raises(InvalidRecordError, match="not a GPAW dataset"):
        list(read_gpaw_npz(tmp_path))
    (tmp_path / "dataset.npz").write_bytes(b"garbage")
    with pytest.raises(InvalidRecordError, match="corrupt or unreadable") as info:
        list(read_gpaw_npz(tmp_path))
    assert info.value.file.endswith("dataset.npz")
    arrays = _arrays()
    arrays["offsets"] = arrays["offsets"][:-1]
    np.savez(tmp_path / "dataset.npz", **arrays)
    with pytest.raises(InvalidRecordError, match="offsets"):
        list(read_gpaw_npz(tmp_path))
