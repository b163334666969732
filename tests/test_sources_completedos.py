"""The pymatgen CompleteDos JSON reader and record_from_complete_dos."""

from __future__ import annotations

import copy
import gzip
import json

import numpy as np
import pytest
from pymatgen.electronic_structure.core import OrbitalType, Spin
from pymatgen.electronic_structure.dos import CompleteDos, Dos
from source_test_helpers import FIXTURES, assert_located, split

from dosmatgen.data.sources import SOURCES, read_completedos, record_from_complete_dos
from dosmatgen.errors import InvalidRecordError


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}_dos.json").read_text())


def test_si_fixture_record_shifts_energies_and_matches_pymatgen_spd_sums():
    assert SOURCES["completedos"] is read_completedos
    (rec,) = read_completedos(FIXTURES / "si_dos.json")
    cdos = CompleteDos.from_dict(_fixture("si"))
    assert rec.id == "si_dos" and rec.source == "completedos"
    assert rec.crystal.num_atoms == 2 and rec.crystal.symbols == ["Si", "Si"]
    assert rec.efermi == pytest.approx(5.62592938)
    assert rec.site_dos.shape == (2, 3, 601) and rec.total_dos.shape == (601,)
    assert np.allclose(rec.energies, cdos.energies - 5.62592938)
    assert rec.energies[0] == pytest.approx(-7.54 - 5.62592938, abs=0.01)
    # independent path: pymatgen's element-summed spd DOS equals our site DOS summed over sites
    spd = cdos.get_spd_dos()
    for channel, orbital in enumerate((OrbitalType.s, OrbitalType.p, OrbitalType.d)):
        assert np.allclose(rec.site_dos[:, channel].sum(axis=0), spd[orbital].densities[Spin.up])
    assert np.allclose(rec.total_dos, cdos.densities[Spin.up])
    assert rec.metadata["spin_polarized"] is False


def test_nb3sn_and_list_files_with_ids(tmp_path):
    (rec,) = read_completedos(FIXTURES / "nb3sn_dos.json")
    assert rec.crystal.formula == "Nb3Sn" and rec.site_dos.shape == (8, 3, 301)
    assert rec.site_dos[:, 2].sum() > 0  # Nb d states present
    si, nb = _fixture("si"), _fixture("nb3sn")
    nb["material_id"] = "mp-12345"
    path = tmp_path / "many.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump([si, nb], fh)
    records, errors = split(read_completedos(path))
    assert errors == [] and [r.id for r in records] == ["many:0", "mp-12345"]
    # a folder of JSON files
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "si.json").write_text(json.dumps(si))
    assert [r.id for r in read_completedos(tmp_path / "dir")] == ["si"]


def test_spin_polarised_dos_is_summed_over_spins():
    cdos = CompleteDos.from_dict(_fixture("si"))
    up, down = 0.3, 0.7
    total = Dos(cdos.efermi, cdos.energies, {Spin.up: up * cdos.densities[Spin.up], Spin.down: down * cdos.densities[Spin.up]})
    pdos = {
        site: {orb: {Spin.up: up * np.asarray(d[Spin.up]), Spin.down: down * np.asarray(d[Spin.up])} for orb, d in orbs.items()}
        for site, orbs in cdos.pdos.items()
    }
    polarised = CompleteDos(cdos.structure, total, pdos)
    a = record_from_complete_dos(cdos, "si", "test").validate()
    b = record_from_complete_dos(polarised, "si", "test").validate()
    assert b.metadata["spin_polarized"] is True
    assert np.allclose(a.site_dos, b.site_dos) and np.allclose(a.total_dos, b.total_dos)


def _bad_entries() -> tuple[list[dict], dict[int, str]]:
    """A list with one good CompleteDos and one per bad-input case; returns (entries, {index: problem})."""
    good = _fixture("si")
    entries, problems = [good], {}

    def bad(problem, edit):
        d = copy.deepcopy(good)
        edit(d)
        problems[len(entries)] = problem
        entries.append(d)

    bad("missing Fermi level", lambda d: d.pop("efermi"))
    bad("site 0 s DOS has 500 energies, expected 601", lambda d: d["pdos"][0]["s"]["densities"].update({"1": d["pdos"][0]["s"]["densities"]["1"][:500]}))
    bad("total DOS has (600,) values", lambda d: d["densities"].update({"1": d["densities"]["1"][:600]}))
    bad("NaN", lambda d: d["pdos"][1]["px"]["densities"]["1"].__setitem__(300, float("nan")))
    bad("negative values", lambda d: d["densities"]["1"].__setitem__(300, -2.0))
    bad("'Xx' is not a valid Element", lambda d: d["structure"]["sites"][1]["species"][0].update(element="Xx"))
    bad("atoms on top of each other", lambda d: d["structure"]["sites"][1].update(abc=[0.01, 0.0, 0.0], xyz=[0.0, 0.0273, 0.0273]))
    bad("empty structure", lambda d: (d["structure"].update(sites=[]), d.update(pdos=[])))
    bad("not a CompleteDos", lambda d: d.pop("structure"))
    return entries, problems


def test_every_bad_completedos_is_located_and_the_good_one_loads(tmp_path):
    entries, problems = _bad_entries()
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(entries + ["not an object"]))
    records, errors = split(read_completedos(path))
    assert [r.id for r in records] == ["mixed:0"]
    assert len(errors) == len(problems) + 1
    by_record = {e.record: e for e in errors}
    for index, problem in problems.items():
        assert_located(by_record[f"mixed:{index}"], file="mixed.json", record=f"mixed:{index}", problem=problem)
    assert_located(by_record[f"mixed:{len(entries)}"], file="mixed.json", record=f"mixed:{len(entries)}", problem="expected a CompleteDos JSON object")


def test_unreadable_json_is_one_located_error_and_missing_file_raises(tmp_path):
    (tmp_path / "broken.json").write_text('{"efermi": 1.0, ')
    (err,) = read_completedos(tmp_path / "broken.json")
    assert isinstance(err, InvalidRecordError) and err.file.endswith("broken.json") and "unreadable JSON" in err.problem
    with pytest.raises(InvalidRecordError, match="no such file"):
        list(read_completedos(tmp_path / "nope.json"))
