"""The elemental reference table that ships for CHGNet (tools/build_reference_table.py): the installed CHGNet has one,
its entries are what the reference code computes, and a run takes them instead of relaxing the elements again."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dosmatgen.elements import atomic_number
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.mlff import MLFF, MLFFOutput
from dosmatgen.relax.references import ElementalReferences, shipped_table_path

pytest.importorskip("chgnet")


@pytest.fixture(scope="module")
def chgnet():
    from dosmatgen.relax import get_mlff

    return get_mlff("chgnet")


@pytest.fixture(scope="module")
def table(chgnet):
    path = shipped_table_path(chgnet.cache_key)
    assert path.is_file(), f"no shipped reference table for the installed {chgnet.cache_key}: run tools/build_reference_table.py"
    return json.loads(path.read_text())


class NoCallsMLFF(MLFF):
    """CHGNet's key (so the shipped table applies), but it counts its calls and cannot evaluate anything."""

    def __init__(self, cache_key: str) -> None:
        self.name, self.version = cache_key.split("@", 1)
        self.supported_elements = frozenset(range(1, 95))
        self.calls = 0

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        self.calls += 1
        raise RuntimeError("not a force field")


def test_the_table_covers_every_element_chgnet_supports(chgnet, table):
    assert table["mlff"] == chgnet.cache_key and table["fmax"] == 0.02 and table["max_steps"] == 800
    want = {z for z in range(1, 101) if z in chgnet.supported_elements}
    failed = {atomic_number(sym) for sym in table.get("failed", {})}
    assert {int(e["z"]) for e in table["elements"].values()} | failed == want
    assert not failed  # He too (from its van der Waals radius: the covalent 0.28 A gives cells the prefilter rejects)
    assert all(np.isfinite(e["energy_per_atom"]) for e in table["elements"].values())


@pytest.mark.parametrize("sym", ["Cu", "O", "S", "He"])  # an ASE solid, a molecule, prototype searches
def test_entries_are_what_the_reference_code_computes(chgnet, table, tmp_path, sym):
    computed = ElementalReferences(chgnet, cache_path=tmp_path / "refs.json", shipped=False).entry(atomic_number(sym))
    shipped = table["elements"][sym]
    assert computed["structure"] == shipped["structure"] and computed["kind"] == shipped["kind"]
    # the same relaxation; float32 results may differ in the last bits with the batch they were computed in
    assert abs(computed["energy_per_atom"] - shipped["energy_per_atom"]) < 1e-4


def test_a_run_takes_the_shipped_entries_and_records_them(table, tmp_path):
    cache = tmp_path / "run" / "references" / "elemental.json"
    mlff = NoCallsMLFF(table["mlff"])
    refs = ElementalReferences(mlff, cache_path=cache)
    assert refs.energy_per_atom(28) == table["elements"]["Ni"]["energy_per_atom"] and mlff.calls == 0
    saved = json.loads(cache.read_text())["elements"]
    assert list(saved) == ["Ni"] and saved["Ni"]["source"] == "shipped table"


@pytest.mark.parametrize("settings", [{"fmax": 0.05}, {"max_steps": 300}, {"shipped": False}])
def test_other_settings_or_shipped_false_compute_instead(table, tmp_path, settings):
    mlff = NoCallsMLFF(table["mlff"])
    refs = ElementalReferences(mlff, cache_path=tmp_path / "refs.json", **settings)
    with pytest.raises(InvalidRecordError, match="no elemental reference for Ni: .*every reference structure failed"):
        refs.energy_per_atom(28)
    assert mlff.calls > 0


def test_another_force_field_version_never_uses_the_table(table, tmp_path):
    other = NoCallsMLFF(table["mlff"] + "-patched")
    with pytest.raises(InvalidRecordError, match="no elemental reference for Ni"):
        ElementalReferences(other, cache_path=tmp_path / "refs.json").energy_per_atom(28)
    assert other.calls > 0


def test_a_failure_in_the_table_is_taken_too(tmp_path, monkeypatch):
    """An element the table records as failed is not relaxed again: the run records the failure and its reason."""
    import dosmatgen.relax.references as references

    table = {"mlff": "fake@1", "fmax": 0.02, "max_steps": 800, "elements": {}, "failed": {"Xe": "fake: no minimum"}}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(references, "shipped_table_path", lambda key: path)
    mlff = NoCallsMLFF("fake@1")
    refs = ElementalReferences(mlff, cache_path=tmp_path / "refs.json")
    with pytest.raises(InvalidRecordError, match="no elemental reference for Xe: fake: no minimum"):
        refs.energy_per_atom(54)
    assert mlff.calls == 0 and json.loads((tmp_path / "refs.json").read_text())["failed"] == {"Xe": "fake: no minimum"}
