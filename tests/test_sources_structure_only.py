"""Structure-only sources: CIF folder and zip, CSV with a cif column, extxyz."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from source_test_helpers import STRUCTURES, assert_located, one_error, split

from dosmatgen.data.sources import SOURCES, STRUCTURE_ONLY_SOURCES, get_reader, read_cif, read_csv, read_extxyz
from dosmatgen.errors import InvalidRecordError


def _no_dos(records):
    return all(r.energies is None and r.site_dos is None and r.total_dos is None and not r.has_dos for r in records)


def test_registry_names_every_source():
    assert set(SOURCES) == {"gpaw", "completedos", "vasprun", "mp", "cif", "csv", "extxyz"}
    assert STRUCTURE_ONLY_SOURCES == {"cif", "csv", "extxyz"}
    assert get_reader("csv") is read_csv
    with pytest.raises(InvalidRecordError, match="unknown source 'xyz'.*completedos"):
        get_reader("xyz")


def test_cif_folder_and_zip():
    records, errors = split(read_cif(STRUCTURES / "cifs"))
    assert errors == [] and [r.id for r in records] == ["GdO", "Os", "SbAu"] and _no_dos(records)
    assert records[0].source == "cif" and records[0].metadata["file"].endswith("GdO.cif")
    records, errors = split(SOURCES["cif"](STRUCTURES / "mattergen_cifs.zip"))
    assert errors == [] and len(records) == 4 and records[0].id == "cifs/mattergen/chemical_system/HfZnN2"


def test_csv_keeps_material_id_and_parses_every_row():
    records, errors = split(read_csv(STRUCTURES / "perov_5_val_head.csv"))
    with open(STRUCTURES / "perov_5_val_head.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert errors == [] and [r.id for r in records] == [row["material_id"] for row in rows]
    assert records[0].id == "18517" and records[0].crystal.formula == "CdCuN3"
    assert all(r.crystal.num_atoms == 5 for r in records) and _no_dos(records)
    assert [r.source for r in records] == ["csv"] * 5


def test_extxyz_records():
    records, errors = split(read_extxyz(STRUCTURES / "small.extxyz"))
    assert errors == [] and [r.id for r in records] == ["Si-diamond", "NaCl-rocksalt", "Cu-fcc-cubic"] and _no_dos(records)


def _rows_with_bad_ones(tmp_path):
    with open(STRUCTURES / "perov_5_val_head.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    good = rows[0]["cif"]
    rows[1]["cif"] = "data_x\n_cell_length_a 4\nnot a cif\n"
    rows[2]["cif"] = good.replace("  N  N2  1  0.49959202  -0.00000000  0.50000000  1", "  N  N2  1  0.00159044  0.00000000  0.01  1")
    rows[3]["cif"] = ""
    rows[4]["cif"] = good.replace("Cd  Cd1", "Qq  Qq1")
    assert rows[2]["cif"] != good and rows[4]["cif"] != good
    path = tmp_path / "perov.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    return path, [r["material_id"] for r in rows]


def test_bad_csv_rows_are_located_by_row_and_id(tmp_path):
    path, ids = _rows_with_bad_ones(tmp_path)
    records, errors = split(read_csv(path))
    assert [r.id for r in records] == [ids[0]]
    by_record = {str(e.record): e for e in errors}
    assert len(errors) == 4
    expected = {1: "malformed CIF", 2: "atoms on top of each other", 3: "empty CIF cell", 4: "unknown element 'Qq'"}
    for row, problem in expected.items():
        (key,) = [k for k in by_record if ids[row] in k]
        assert_located(by_record[key], file="perov.csv", record=ids[row], problem=problem)
    assert sorted(by_record) == sorted(f"row {row} ({ids[row]})" for row in expected)


def test_csv_without_cif_column_is_unusable(tmp_path):
    (tmp_path / "x.csv").write_text("material_id,formula\n1,NaCl\n")
    with pytest.raises(InvalidRecordError, match="no 'cif' column"):
        list(read_csv(tmp_path / "x.csv"))


def test_bad_cifs_in_a_folder_are_located(tmp_path):
    shutil.copytree(STRUCTURES / "cifs", tmp_path / "cifs")
    (tmp_path / "cifs" / "broken.cif").write_text("hello, I am not a CIF\n")
    text = (STRUCTURES / "cifs" / "Os.cif").read_text()
    lines = text.rstrip("\n").split("\n")
    last = lines[-1].split()
    last[3:6] = [f"{float(v) + 0.005:.8f}" for v in lines[-2].split()[3:6]]  # an atom next to the previous one
    (tmp_path / "cifs" / "overlap.cif").write_text("\n".join(lines[:-1] + ["  " + "  ".join(last)]) + "\n")
    records, errors = split(read_cif(tmp_path / "cifs"))
    assert [r.id for r in records] == ["GdO", "Os", "SbAu"]
    by_record = {e.record: e for e in errors}
    assert_located(by_record["broken"], file="cifs/broken.cif", record="broken", problem="malformed CIF")
    assert_located(by_record["overlap"], file="cifs/overlap.cif", record="overlap", problem="atoms on top of each other")


def test_empty_extxyz_frame_is_an_empty_structure(tmp_path):
    text = (STRUCTURES / "small.extxyz").read_text()
    empty = '0\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 id=nothing pbc="T T T"\n'
    (tmp_path / "e.extxyz").write_text(empty + text)
    records, errors = split(read_extxyz(tmp_path / "e.extxyz"))
    assert len(records) == 3
    assert_located(one_error(errors), file="e.extxyz", record="nothing", problem="empty structure")
    assert np.isfinite(records[0].crystal.volume)
