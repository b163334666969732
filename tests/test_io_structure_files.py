"""CIF, zip-of-CIF and extxyz reading and writing (dosmatgen.io.structure_files)."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
from pymatgen.io.cif import CifParser
from source_test_helpers import STRUCTURES, assert_located, same_structure_up_to_site_order

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io import (
    atomic_write,
    iter_cif,
    iter_extxyz,
    iter_structures,
    read_structures,
    write_cif,
    write_cif_folder,
    write_cif_zip,
    write_extxyz,
    write_structures,
)


def _crystals() -> tuple[list[str], list[Crystal]]:
    """Three crystals with non-orthogonal lattices and mixed site orders."""
    rng = np.random.default_rng(0)
    out = []
    for n, zs in [(2, [14, 14]), (3, [8, 22, 8]), (5, [38, 22, 8, 8, 8])]:
        lat = np.diag([3.9, 4.1, 4.4]) + rng.uniform(-0.3, 0.3, (3, 3))
        frac = (np.arange(n)[:, None] * np.array([0.21, 0.37, 0.53])) % 1.0
        out.append(Crystal(np.array(zs), frac, lat))
    return ["mp-149", "TiO2 rutile/variant", "SrTiO3"], out


def test_reads_cif_folder_with_ids_and_provenance():
    items = list(iter_cif(STRUCTURES / "cifs"))
    assert [rid for rid, _ in items] == ["GdO", "Os", "SbAu"]
    crystals = dict(items)
    # independent read of one file with pymatgen
    ref = CifParser(str(STRUCTURES / "cifs" / "SbAu.cif")).parse_structures(primitive=False)[0]
    sbau = crystals["SbAu"]
    assert sbau.formula == "SbAu" and sbau.num_atoms == 4
    assert sorted(sbau.atomic_numbers.tolist()) == sorted(s.specie.Z for s in ref)
    assert np.isclose(sbau.volume, ref.volume)
    assert sbau.metadata["file"].endswith("SbAu.cif")


def test_reads_mattergen_style_zip_with_entry_ids():
    items = list(iter_structures(STRUCTURES / "mattergen_cifs.zip"))
    ids = [rid for rid, _ in items]
    assert ids == [
        "cifs/mattergen/chemical_system/HfZnN2",
        "cifs/mattergen/ml_bulk_modulus/Re3B",
        "cifs/mattergen/space_group/SrCaSiPt",
        "cifs/mattergen/mattergen_base/SbAu",
    ]
    assert all(isinstance(c, Crystal) for _, c in items)
    assert [c.formula for _, c in items] == ["HfZnN2", "Re3B", "SrCaSiPt", "SbAu"]


def test_reads_extxyz_fixture_written_by_ase():
    ids, crystals = read_structures(STRUCTURES / "small.extxyz")
    assert ids == ["Si-diamond", "NaCl-rocksalt", "Cu-fcc-cubic"]
    assert [c.num_atoms for c in crystals] == [2, 2, 4]
    assert np.allclose(crystals[0].frac_coords[1], [0.25, 0.25, 0.25])
    assert np.allclose(crystals[2].lattice, 3.61 * np.eye(3))


def test_extxyz_round_trip_is_exact(tmp_path):
    ids, crystals = _crystals()
    path = write_extxyz(tmp_path / "out.extxyz", crystals, ids)
    ids2, back = read_structures(path)
    assert ids2 == ids
    for a, b in zip(crystals, back):
        assert a.equals(b, atol=1e-7)


@pytest.mark.parametrize("suffix", [".cif", ".zip", "folder"])
def test_cif_round_trips_keep_ids_species_coordinates_and_lattice_parameters(tmp_path, suffix):
    ids, crystals = _crystals()
    target = tmp_path / ("out" if suffix == "folder" else f"out{suffix}")
    write_structures(target, crystals, ids)
    back = list(iter_structures(target))
    assert all(isinstance(c, Crystal) for _, c in back), [str(c) for _, c in back]
    got = dict(back)
    if suffix == "folder":  # file names are sanitised ids
        assert sorted(got) == ["SrTiO3", "TiO2_rutile_variant", "mp-149"]
        expected = dict(zip(["mp-149", "TiO2_rutile_variant", "SrTiO3"], crystals))
    elif suffix == ".zip":  # zip entries keep "/" as folders
        assert sorted(got) == sorted(["mp-149", "TiO2_rutile/variant", "SrTiO3"])
        expected = dict(zip(["mp-149", "TiO2_rutile/variant", "SrTiO3"], crystals))
    else:  # one CIF, one data block per crystal
        assert list(got) == ["mp-149", "TiO2_rutile/variant", "SrTiO3"]
        expected = dict(zip(list(got), crystals))
    for rid, c in expected.items():
        assert same_structure_up_to_site_order(c, got[rid]), rid


def test_cif_zip_round_trip_of_real_structures(tmp_path):
    ids, crystals = read_structures(STRUCTURES / "mattergen_cifs.zip")
    write_cif_zip(tmp_path / "gen.zip", crystals, ids)
    ids2, back = read_structures(tmp_path / "gen.zip")
    assert ids2 == ids
    for a, b in zip(crystals, back):
        assert same_structure_up_to_site_order(a, b)


def test_one_malformed_cif_in_zip_is_located_and_the_rest_load(tmp_path):
    good = (STRUCTURES / "cifs" / "Os.cif").read_text()
    path = tmp_path / "generated_crystals_cif.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("gen_0.cif", good)
        z.writestr("gen_1.cif", "data_broken\n_cell_length_a 3.0\nthis is not a CIF loop\n")
        z.writestr("gen_2.cif", (STRUCTURES / "cifs" / "GdO.cif").read_text())
        z.writestr("notes.txt", "ignored: not a CIF")
    items = list(iter_cif(path))
    assert [rid for rid, _ in items] == ["gen_0", "gen_1", "gen_2"]
    assert isinstance(items[0][1], Crystal) and isinstance(items[2][1], Crystal)
    assert_located(items[1][1], file="generated_crystals_cif.zip", record="gen_1.cif", problem="malformed CIF")
    with pytest.raises(InvalidRecordError, match="gen_1.cif"):
        read_structures(path)


def test_unknown_element_in_cif_is_named(tmp_path):
    text = (STRUCTURES / "cifs" / "GdO.cif").read_text().replace("  O  O", "  Xx  Xx")
    assert "Xx" in text
    (tmp_path / "bad.cif").write_text(text)
    (rid, err), = list(iter_cif(tmp_path / "bad.cif"))
    assert_located(err, file="bad.cif", record="bad", problem="unknown element 'Xx'")


def test_extxyz_bad_frame_is_located_and_later_frames_still_load(tmp_path):
    text = (STRUCTURES / "small.extxyz").read_text()
    frames = text.split("\n2\n", 1)  # the Si frame | the NaCl and Cu frames
    bad = '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 id=bad-element pbc="T T T"\nQq 0.0 0.0 0.0\n'
    nonperiodic = '1\nProperties=species:S:1:pos:R:3 id=molecule pbc="F F F"\nH 0.0 0.0 0.0\n'
    path = tmp_path / "mixed.extxyz"
    path.write_text(frames[0] + "\n" + bad + nonperiodic + "2\n" + frames[1])
    items = list(iter_extxyz(path))
    assert [rid for rid, _ in items] == ["Si-diamond", "mixed:1", "molecule", "NaCl-rocksalt", "Cu-fcc-cubic"]
    assert [isinstance(c, Crystal) for _, c in items] == [True, False, False, True, True]
    assert_located(items[1][1], file="mixed.extxyz", record="frame 1", problem="malformed extxyz frame")
    assert_located(items[2][1], file="mixed.extxyz", record="frame 2", problem="periodic")


def test_truncated_extxyz_reports_the_broken_frame(tmp_path):
    path = tmp_path / "cut.extxyz"
    path.write_text((STRUCTURES / "small.extxyz").read_text().rsplit("\n", 3)[0] + "\n")
    items = list(iter_extxyz(path))
    assert [isinstance(c, Crystal) for _, c in items] == [True, True, False]
    assert_located(items[2][1], file="cut.extxyz", record="frame 2", problem="truncated frame")


def test_missing_or_corrupt_inputs_raise_located_errors(tmp_path):
    with pytest.raises(InvalidRecordError, match="no such file"):
        list(iter_cif(tmp_path / "nope"))
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(InvalidRecordError, match="corrupt or unreadable zip"):
        list(iter_cif(tmp_path / "bad.zip"))
    with pytest.raises(InvalidRecordError, match="unknown structure format"):
        list(iter_structures(tmp_path / "x.pdb"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRecordError, match="no .cif files"):
        list(iter_cif(tmp_path / "empty"))


def test_writes_are_atomic(tmp_path):
    ids, crystals = _crystals()
    path = tmp_path / "set.extxyz"
    write_extxyz(path, crystals, ids)
    before = path.read_bytes()
    with pytest.raises(AttributeError):
        write_extxyz(path, [crystals[0], "not a crystal"], ["a", "b"])  # fails while building the frames
    with pytest.raises(RuntimeError):
        with atomic_write(path) as fh:
            fh.write("half a file")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["set.extxyz"]  # no temporary left behind


def test_write_rejects_mismatched_or_duplicate_ids(tmp_path):
    ids, crystals = _crystals()
    with pytest.raises(ValueError, match="ids"):
        write_cif(tmp_path / "a.cif", crystals, ids[:2])
    with pytest.raises(ValueError, match="unique"):
        write_cif_folder(tmp_path / "f", crystals, ["x", "x", "y"])
