"""Batched FIRE + Frechet cell filter: ASE equivalence, one MLFF call per step, queue, failure isolation."""

from __future__ import annotations

import numpy as np
import pytest

from dosmatgen.crystal import Crystal
from dosmatgen.relax.ase_reference import relax_sequential_ase
from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
from dosmatgen.relax.cell_filter import FrechetCellCoordinates
from dosmatgen.relax.mlff import get_mlff
from tests.relax_helpers import ConstantPullMLFF, CountingMLFF, PoisonedMLFF, lj_cluster_cell, rattled_fcc


def test_generalized_forces_match_ase_frechet_cell_filter():
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter

    crystal = rattled_fcc("Cu", 3.7, seed=1)
    atoms = crystal.to_ase()
    atoms.calc = EMT()
    filt = FrechetCellFilter(atoms)
    # move the cell away from the start so that log(F) != 0, exactly as an optimizer would
    x = filt.get_positions()
    x[-3:] += np.array([[0.05, 0.01, 0.0], [0.01, -0.03, 0.02], [0.0, 0.02, 0.04]]) * len(atoms)
    filt.set_positions(x)
    ours = FrechetCellCoordinates.start(crystal.cart_coords, crystal.lattice)
    ours.q[:] = x
    ours.q[-3:] -= np.log(len(atoms)) * np.eye(3) * len(atoms)  # ASE's constant offset c*log(n)*I
    pos, cell = ours.positions_and_cell()
    np.testing.assert_allclose(cell, atoms.cell[:], atol=1e-10)
    np.testing.assert_allclose(pos, atoms.positions, atol=1e-10)
    from ase.stress import voigt_6_to_full_3x3_stress

    g = ours.generalized_forces(atoms.get_forces(), voigt_6_to_full_3x3_stress(atoms.get_stress()), atoms.get_volume())
    np.testing.assert_allclose(g, filt.get_forces(), atol=1e-10)


@pytest.mark.slow
def test_batched_emt_matches_ase_fire_step_for_step():
    from ase.calculators.emt import EMT

    crystals = [rattled_fcc(el, a, seed=i) for i, (el, a) in enumerate([("Cu", 3.7), ("Al", 4.0), ("Ni", 3.45)])]
    relaxer = BatchedRelaxer(get_mlff("emt"), RelaxSettings(fmax=0.03, max_steps=200, batch_size=2))
    batched = relaxer.run(crystals)
    reference, _ = relax_sequential_ase(crystals, EMT(), fmax=0.03, max_steps=200)
    for b, r in zip(batched, reference):
        assert b.converged and r.converged
        assert b.steps == r.steps and b.steps > 5
        assert abs(b.energy_relaxed - r.energy_relaxed) < 1e-8
        assert abs(b.energy_initial - r.energy_initial) < 1e-10
        np.testing.assert_allclose(b.relaxed.lattice, r.relaxed.lattice, atol=1e-7)
        assert b.energy_relaxed < b.energy_initial


@pytest.mark.slow
def test_one_mlff_call_per_step_for_the_whole_batch_with_inflight_replacement():
    zs = list(range(20, 30))  # one element per structure identifies it in the call log
    crystals = [lj_cluster_cell(z, seed=z) for z in zs]
    counter = CountingMLFF()
    relaxer = BatchedRelaxer(counter, RelaxSettings(fmax=0.02, max_steps=300, batch_size=4))
    results = relaxer.run(crystals)
    assert all(r.converged for r in results)
    # exactly one model call per optimizer iteration, each covering every structure in flight
    assert len(counter.calls) == relaxer.n_calls == len(relaxer.call_sizes)
    assert [len(c) for c in counter.calls] == relaxer.call_sizes
    assert relaxer.n_bisection_calls == 0
    # every evaluation of every structure happened inside those calls: sum of sizes = sum(steps + 1)
    assert sum(relaxer.call_sizes) == sum(r.steps + 1 for r in results)
    assert relaxer.n_calls < sum(r.steps + 1 for r in results) / 2
    # in-flight replacement: while some structure is still waiting, every call is full
    seen: set[int] = set()
    for call in counter.calls:
        if len(seen) < len(zs):
            assert len(call) == 4
        seen |= set(call)
    assert seen == set(zs)
    # the calls made per structure equal its own steps + 1
    for z, r in zip(zs, results):
        assert sum(z in c for c in counter.calls) == r.steps + 1


@pytest.mark.slow
def test_nan_for_one_structure_is_flagged_and_the_rest_converge():
    crystals = [lj_cluster_cell(z, seed=z) for z in (20, 21, 22, 23)]
    poisoned = PoisonedMLFF(nan_z=22)
    results = BatchedRelaxer(poisoned, RelaxSettings(fmax=0.02, batch_size=4)).run(crystals)
    assert results[2].status == "failed" and "non-finite" in results[2].reason and results[2].failure == "nonfinite"
    assert not results[2].ok
    assert all(results[i].converged for i in (0, 1, 3))


@pytest.mark.slow
def test_exception_for_one_structure_is_isolated_by_bisection():
    crystals = [lj_cluster_cell(z, seed=z) for z in (20, 21, 22, 23, 24)]
    poisoned = PoisonedMLFF(raise_z=21)
    relaxer = BatchedRelaxer(poisoned, RelaxSettings(fmax=0.02, batch_size=5))
    results = relaxer.run(crystals)
    assert results[1].status == "failed" and "model blew up" in results[1].reason and results[1].failure == "mlff_error"
    assert all(results[i].converged for i in (0, 2, 3, 4))
    assert relaxer.n_bisection_calls > 0


def test_prefilter_rejects_before_the_mlff():
    good = lj_cluster_cell(26, seed=0)
    overlapping = Crystal(np.array([29, 29]), np.array([[0, 0, 0], [0.02, 0, 0]]), np.eye(3) * 4.0)
    tiny_cell = Crystal(np.array([29, 29]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 0.9)
    huge_cell = Crystal(np.array([29]), np.zeros((1, 3)), np.eye(3) * 30.0)
    counter = CountingMLFF(get_mlff("emt"))  # EMT has no Fe parameters
    cu = rattled_fcc("Cu", 3.7, seed=0)
    results = BatchedRelaxer(counter, RelaxSettings(fmax=0.05, batch_size=8)).run([overlapping, tiny_cell, huge_cell, good, cu])
    assert [r.status for r in results] == ["rejected"] * 4 + ["converged"]
    assert "overlapping atoms" in results[0].reason
    assert "non-positive or below" in results[1].reason
    assert "absurd" in results[2].reason
    assert "not supported" in results[3].reason and "Fe" in results[3].reason
    assert [r.failure for r in results] == ["overlapping_atoms", "bad_cell", "bad_cell", "unsupported_elements", None]
    assert all(call == [29] for call in counter.calls)  # only the Cu cell ever reached the model


def test_collapsing_atoms_and_exploding_cell_are_flagged():
    base = Crystal(np.array([26, 26]), np.array([[0.1, 0.1, 0.1], [0.45, 0.5, 0.55]]), np.eye(3) * 5.0)
    collapse = BatchedRelaxer(ConstantPullMLFF(pull=5.0), RelaxSettings(fmax=0.01, check_every=1)).run([base])[0]
    assert collapse.status == "failed" and "atoms collapsed" in collapse.reason and collapse.failure == "atoms_collapsed"
    explode = BatchedRelaxer(ConstantPullMLFF(stress=-0.5), RelaxSettings(fmax=0.01, max_steps=2000)).run([base])[0]
    assert explode.status == "failed" and "cell exploded" in explode.reason and explode.failure == "cell_exploded"
    from dosmatgen.relax.result import FAILURE_KINDS
    from dosmatgen.runstore.flags import FAILURE_FLAGS

    assert set(FAILURE_FLAGS) == set(FAILURE_KINDS)  # every failure kind has a run-store bit


def test_max_steps_and_trajectory():
    crystal = lj_cluster_cell(26, seed=3)
    r = BatchedRelaxer(CountingMLFF(), RelaxSettings(fmax=1e-6, max_steps=7, trajectory=True)).run([crystal])[0]
    assert r.status == "not_converged" and r.steps == 7 and not r.converged and r.ok
    assert len(r.trajectory) == 8
    assert r.trajectory[0].energy == pytest.approx(r.energy_initial)
    assert r.trajectory[-1].energy == pytest.approx(r.energy_relaxed)
    assert r.trajectory[-1].crystal.equals(r.relaxed)
