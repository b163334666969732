"""Elemental references (lazy, cached, keyed by MLFF), formation energies, hull and filter; CHGNet validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.formation_energy import StabilityFilter, formation_energy_per_atom
from dosmatgen.relax.hull import energy_above_hull
from dosmatgen.relax.references import ElementalReferences, reference_candidates
from tests.relax_helpers import CountingMLFF

EV_PER_KJ_MOL = 1 / 96.485332


def _rocksalt(a_sym, b_sym, a):
    from ase.build import bulk

    return Crystal.from_ase(bulk(f"{a_sym}{b_sym}", "rocksalt", a=a))


def test_reference_set_covers_every_element_of_the_vocabulary():
    kinds = {}
    for z in range(1, 101):
        cands = reference_candidates(z)
        assert cands and all(c.z == z and c.crystal.num_atoms >= 1 for c in cands)
        kinds[z] = cands[0].kind
    assert kinds[8] == kinds[1] == kinds[7] == kinds[9] == kinds[17] == "molecule"
    assert kinds[11] == kinds[13] == kinds[14] == "solid"
    assert kinds[5] == kinds[16] == "prototype"
    with pytest.raises(InvalidRecordError):
        reference_candidates(101)  # beyond the model vocabulary


def test_references_are_lazy_cached_and_keyed_by_mlff(tmp_path):
    cache = tmp_path / "refs.json"
    counter = CountingMLFF()  # Lennard-Jones
    refs = ElementalReferences(counter, cache_path=cache, fmax=0.02)
    e_cu = refs.energy_per_atom(29)
    assert np.isfinite(e_cu) and e_cu < 0
    data = json.loads(cache.read_text())
    assert data["mlff"] == counter.cache_key and list(data["elements"]) == ["Cu"]  # only what was asked
    n_calls = len(counter.calls)
    again = ElementalReferences(counter, cache_path=cache)
    assert again.energy_per_atom(29) == e_cu and len(counter.calls) == n_calls  # served from the cache
    again.ensure([8, 29])  # O: molecule in a box
    assert set(json.loads(cache.read_text())["elements"]) == {"Cu", "O"}
    assert again.entry(8)["kind"] == "molecule"

    class OtherVersion(CountingMLFF):
        pass

    other = OtherVersion()
    other.version = "different-parameters"
    assert ElementalReferences(other, cache_path=cache).known == {}  # never reuses another model's numbers


def test_formation_energy_hull_and_filter_arithmetic():
    nacl = _rocksalt("Na", "Cl", 5.64)  # 2 atoms
    mu = {11: -1.3, 17: -1.8}
    assert formation_energy_per_atom(nacl, -7.2, mu) == pytest.approx((-7.2 + 1.3 + 1.8) / 2)
    # hull: NaCl at -2.05 eV/atom formation; a competing NaCl polymorph lower by 0.1 eV/atom
    e_total = 2 * (-2.05) + (-1.3 - 1.8)
    assert energy_above_hull(nacl, e_total, [], mu) == pytest.approx(0.0, abs=1e-9)
    assert energy_above_hull(nacl, e_total, [(nacl, e_total - 0.2)], mu) == pytest.approx(0.1, abs=1e-9)
    f = StabilityFilter()
    assert f.passes(-0.01) and f.passes(0.0) and not f.passes(0.02) and not f.passes(float("nan"))
    assert not StabilityFilter(max_formation_energy=-1.5).passes(-1.0)
    assert not StabilityFilter(max_energy_above_hull=0.05).passes(-1.0, 0.1)


@pytest.mark.mlff
@pytest.mark.slow  # ~25 s on an idle 2-core box, ~130 s on the shared one
def test_chgnet_formation_energies_of_known_compounds(tmp_path):
    """CHGNet formation energies vs experiment (standard enthalpies of formation at 298 K).

    Experimental values, kJ/mol (NBS tables: Wagman et al., J. Phys. Chem. Ref. Data 11, Suppl. 2 (1982);
    SrTiO3 also Robie & Hemingway, USGS Bull. 2131 (1995)): NaCl -411.2, MgO -601.6, Al2O3 (corundum)
    -1675.7, SrTiO3 -1672.4; i.e. -2.13, -3.12, -3.47, -3.47 eV/atom.
    Measured here (CHGNet 0.3.0, fmax 0.02, O from an O2 molecule, Cl from a Cl2 molecule):
    NaCl -2.10, MgO -3.11, Al2O3 -3.51, SrTiO3 -3.64 eV/atom (|error| 0.03, 0.01, 0.03, 0.17).
    The tolerance, 0.25 eV/atom, is about 2.5x CHGNet's typical formation-energy error against MP.
    """
    from ase.spacegroup import crystal as sg_crystal

    from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
    from dosmatgen.relax.formation_energy import formation_energies
    from dosmatgen.relax.mlff import get_mlff

    experimental = {"NaCl": -411.2 / 2, "MgO": -601.6 / 2, "SrTiO3": -1672.4 / 5, "Al2O3": -1675.7 / 5}
    sto = sg_crystal(["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)], spacegroup=221, cellpar=[3.905] * 3 + [90] * 3)
    corundum = sg_crystal(["Al", "O"], basis=[(0, 0, 0.35216), (0.30624, 0, 0.25)], spacegroup=167,
                          cellpar=[4.759, 4.759, 12.991, 90, 90, 120], primitive_cell=True)
    crystals = [_rocksalt("Na", "Cl", 5.64), _rocksalt("Mg", "O", 4.21), Crystal.from_ase(sto), Crystal.from_ase(corundum)]
    mlff = get_mlff("chgnet")
    results = BatchedRelaxer(mlff, RelaxSettings(fmax=0.02)).run(crystals)
    assert all(r.converged for r in results)
    refs = ElementalReferences(mlff, cache_path=tmp_path / "refs.json")
    values = formation_energies(results, refs)
    assert set(json.loads((tmp_path / "refs.json").read_text())["elements"]) == {"Na", "Cl", "Mg", "O", "Sr", "Ti", "Al"}
    for crystal, (e_unrelaxed, e_relaxed) in zip(crystals, values):
        expt = experimental[crystal.formula] * EV_PER_KJ_MOL
        assert abs(e_relaxed - expt) < 0.25, (crystal.formula, e_relaxed, expt)
        assert e_relaxed <= e_unrelaxed + 1e-6  # relaxing never raises the energy


def test_element_without_reference_gives_nan_for_its_structures_only(tmp_path, monkeypatch):
    """An element that gets no reference (here Ra, with its reference construction made to fail): structures
    holding it get NaN formation energies, the others are computed (one must not cost the whole batch)."""
    import numpy as np

    import dosmatgen.relax.references as references

    real = references.reference_candidates

    def no_radium(z):
        if int(z) == 88:
            raise InvalidRecordError("no elemental reference for Z=88 (test)")
        return real(z)

    monkeypatch.setattr(references, "reference_candidates", no_radium)

    from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
    from dosmatgen.relax.formation_energy import elements_without_reference, formation_energies
    from dosmatgen.relax.mlff import get_mlff

    lj = get_mlff("lj")  # supports Z = 1..100
    ra_cu = Crystal(np.array([88, 29]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 3.4)
    cu = Crystal(np.array([29, 29]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 3.0)
    results = BatchedRelaxer(lj, RelaxSettings(fmax=0.05, max_steps=50)).run([ra_cu, cu])
    refs = ElementalReferences(lj, cache_path=tmp_path / "refs.json")
    assert elements_without_reference({88, 29}, refs) == [88]
    (ra0, ra1), (cu0, cu1) = formation_energies(results, refs)
    assert np.isnan(ra0) and np.isnan(ra1)
    assert np.isfinite(cu1)


@pytest.mark.slow
def test_the_reference_set_covers_the_whole_vocabulary_including_heavy_elements(tmp_path):
    """Every element of the model's vocabulary (H..Fm) has reference structures; the heavy ones (Po..Fm) use ASE's
    simple reference state or the prototype search, and a force field that supports them gives finite energies."""
    import numpy as np

    from dosmatgen.relax.mlff import get_mlff
    from dosmatgen.relax.references import reference_candidates

    kinds = {z: {c.kind for c in reference_candidates(z)} for z in range(1, 101)}
    assert kinds[84] == {"solid"} and kinds[90] == {"solid"}  # Po sc, Th fcc: ASE's reference states
    assert kinds[88] == {"prototype"} and kinds[92] == {"prototype"} and kinds[100] == {"prototype"}
    for z in range(84, 101):
        for cand in reference_candidates(z):
            assert cand.crystal.min_interatomic_distance() > 1.0 and np.isfinite(cand.crystal.volume)
    refs = ElementalReferences(get_mlff("lj"), cache_path=tmp_path / "lj.json")
    refs.ensure({84, 88, 92, 94, 100})
    assert all(np.isfinite(refs.known[z]) for z in (84, 88, 92, 94, 100))
    chgnet = ElementalReferences(get_mlff("chgnet"), cache_path=tmp_path / "chgnet.json", shipped=False)  # computed, not the table
    chgnet.ensure({88, 92})  # Ra, U: CHGNet covers Z <= 94
    assert np.isfinite(chgnet.known[88]) and np.isfinite(chgnet.known[92])
