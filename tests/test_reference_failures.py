"""An element none of whose reference structures relaxes (CHGNet's He) costs only the structures that hold it their
formation energy, is recorded in the cache with the reason, and is not retried by the next worker."""

from __future__ import annotations

import json
import math

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
from dosmatgen.relax.references import ElementalReferences
from dosmatgen.relax.workflow import StabilityWorkflow
from dosmatgen.relax.mlff import MLFFOutput
from tests.relax_helpers import CountingMLFF, PoisonedMLFF


class PureHeliumNaN(CountingMLFF):
    """LJ, except that a structure of He only (a He reference structure) gets a NaN energy."""

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        out = super().compute(numbers, positions, cells)
        energy = np.array([np.nan if np.all(np.asarray(z) == 2) else e for z, e in zip(numbers, out.energy)])
        return MLFFOutput(energy, out.forces, out.stress, out.errors)


def _pair(z1: int, z2: int, a: float = 3.4) -> Crystal:
    return Crystal(np.array([z1, z2]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * a)


def test_a_failed_element_costs_only_its_own_structures(tmp_path):
    mlff = PureHeliumNaN()  # He's reference structures never relax; a Cu-He crystal does
    cache = tmp_path / "refs.json"
    flow = StabilityWorkflow(mlff, RelaxSettings(fmax=0.05, max_steps=50), references_cache=cache)
    out = flow.run([_pair(29, 29, 3.0), _pair(29, 2), _pair(29, 47, 3.2)])
    e_form = [relaxed for _, relaxed in out.formation_energy]
    assert math.isfinite(e_form[0]) and math.isfinite(e_form[2])  # the batch keeps its formation energies
    assert out.results[1].ok and math.isnan(e_form[1])  # the He structure relaxed but has no formation energy
    assert "no formation energy for structures with He" in out.reference_note
    saved = json.loads(cache.read_text())
    assert set(saved["elements"]) == {"Cu", "Ag"}
    assert "every reference structure failed to relax" in saved["failed"]["He"]


def test_the_failure_is_read_from_the_cache_not_recomputed(tmp_path):
    cache = tmp_path / "refs.json"
    first = PoisonedMLFF(nan_z=2)
    ElementalReferences(first, cache_path=cache).ensure({2, 29})
    assert first.calls  # computed once
    second = PoisonedMLFF(nan_z=2)
    refs = ElementalReferences(second, cache_path=cache)
    refs.ensure({2, 29})
    assert second.calls == [] and set(refs.failed) == {2} and set(refs.known) == {29}


def test_the_workflow_note_names_the_element_and_why(tmp_path):
    mlff = PureHeliumNaN()
    results = BatchedRelaxer(mlff, RelaxSettings(fmax=0.05, max_steps=50)).run([_pair(29, 2), _pair(29, 29, 3.0)])
    flow = StabilityWorkflow(mlff, RelaxSettings(fmax=0.05, max_steps=50), references_cache=tmp_path / "refs.json")
    values, note = flow._formation_energies(results)
    assert math.isnan(values[0][1]) and math.isfinite(values[1][1])
    assert "no formation energy for structures with He" in note and "every reference structure failed to relax" in note
