"""The Materials Project reader with a synthesised client (no network, no API key, no mp-api needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pymatgen.electronic_structure.dos import CompleteDos
from source_test_helpers import FIXTURES, assert_located, split

from dosmatgen.crystal import Crystal
from dosmatgen.data.sources import SOURCES, read_completedos, read_materials_project, record_from_complete_dos
from dosmatgen.data.sources.materials_project import PAPER_FILTERS, MPFilters, search_material_ids
from dosmatgen.errors import DosmatgenError


def _cdos(name: str) -> CompleteDos:
    return CompleteDos.from_dict(json.loads((FIXTURES / f"{name}_dos.json").read_text()))


class FakeMPRester:
    """Stands in for ``mp_api.client.MPRester``: answers get_dos_by_material_id from the real fixtures."""

    def __init__(self, responses: dict, secret: str = ""):
        self.responses = responses
        self.secret = secret
        self.calls: list[tuple[str, bool]] = []
        self.searches: list[dict] = []
        self.materials = type("Materials", (), {"summary": type("Summary", (), {"search": self._search})()})()

    def get_dos_by_material_id(self, material_id: str, load_projections: bool = False):
        self.calls.append((material_id, load_projections))
        if material_id not in self.responses:
            raise RuntimeError(f"REST query failed for {material_id} with key {self.secret}")
        return self.responses[material_id]

    def _search(self, **kwargs):
        self.searches.append(kwargs)
        return [{"material_id": "mp-149"}, type("Doc", (), {"material_id": "mp-1234"})()]


def test_output_equals_reading_the_complete_dos_directly():
    assert SOURCES["mp"] is read_materials_project
    client = FakeMPRester({"mp-149": _cdos("si")})
    (rec,) = read_materials_project("mp-149", client=client)
    assert client.calls == [("mp-149", True)]  # asks for the site projections
    direct = record_from_complete_dos(_cdos("si"), "mp-149", "materials-project").validate()
    (from_json,) = read_completedos(FIXTURES / "si_dos.json")
    for ref in (direct, from_json):
        assert rec.crystal.equals(ref.crystal, atol=0)
        assert np.array_equal(rec.energies, ref.energies)
        assert np.array_equal(rec.site_dos, ref.site_dos) and np.array_equal(rec.total_dos, ref.total_dos)
        assert rec.efermi == ref.efermi and rec.channels == ref.channels
    assert rec.id == "mp-149" and rec.source == "materials-project" and rec.energy is None


def test_several_ids_bad_ids_and_filters_are_reported_per_id(tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("mp-149  # silicon\nmp-404\n\nmp-5678\n")
    client = FakeMPRester({"mp-149": _cdos("si"), "mp-5678": _cdos("nb3sn")}, secret="SECRET-KEY-1")
    records, errors = split(read_materials_project(ids_file, client=client, api_key="SECRET-KEY-1"))
    assert [r.id for r in records] == ["mp-149", "mp-5678"]
    (err,) = errors
    assert_located(err, file="materials-project", record="mp-404", problem="request failed")
    assert "SECRET-KEY-1" not in str(err) and "***" in str(err)  # the key never reaches a message
    # a stricter filter rejects the 8-atom Nb3Sn, named and counted, while Si still loads
    records, errors = split(read_materials_project(["mp-149", "mp-5678"], client=client, filters=MPFilters(max_atoms=4)))
    assert [r.id for r in records] == ["mp-149"]
    assert_located(errors[0], file="materials-project", record="mp-5678", problem="excluded by filter: 8 atoms > 4")


def test_paper_filters():
    ok = Crystal(np.array([14, 14]), np.zeros((2, 3)) + [[0, 0, 0], [0.25, 0.25, 0.25]], 3.8 * np.eye(3))
    assert PAPER_FILTERS.problem(ok) is None
    tc = Crystal(np.array([43, 8]), [[0, 0, 0], [0.5, 0.5, 0.5]], 4 * np.eye(3))
    assert "Tc" in PAPER_FILTERS.problem(tc)
    po = Crystal(np.array([84]), [[0, 0, 0]], 3.4 * np.eye(3))
    assert "Z > 83 (Po)" in PAPER_FILTERS.problem(po)
    big = Crystal(np.full(21, 6), np.random.default_rng(0).random((21, 3)), 9 * np.eye(3))
    assert "21 atoms > 20" in PAPER_FILTERS.problem(big)
    excluded = PAPER_FILTERS.excluded_symbols()
    assert {"Tc", "Pm", "Po", "U"} <= set(excluded) and "Bi" not in excluded


def test_search_passes_the_filters_to_mp():
    client = FakeMPRester({})
    assert search_material_ids(client=client) == ["mp-149", "mp-1234"]
    (query,) = client.searches
    assert query["num_sites"] == (1, 20) and query["has_props"] == ["dos"]
    assert {"Tc", "Pm", "Po"} <= set(query["exclude_elements"]) and "Bi" not in query["exclude_elements"]


def test_missing_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(DosmatgenError, match="MP_API_KEY"):
        list(read_materials_project("mp-149"))


def test_mp_api_is_imported_lazily():
    code = "import sys, dosmatgen.data.sources; assert 'mp_api' not in sys.modules, 'mp_api imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
