"""Batched BFGS + Frechet cell filter: the same path as ASE's BFGS(FrechetCellFilter) for every structure of a batch."""

from __future__ import annotations

import numpy as np
import pytest

from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
from dosmatgen.relax.bfgs import BFGSParameters, BFGSState
from dosmatgen.relax.mlff import get_mlff
from tests.relax_helpers import rattled_fcc


def test_batched_emt_bfgs_matches_ase_bfgs_step_for_step():
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    crystals = [rattled_fcc(el, a, seed=i) for i, (el, a) in enumerate([("Cu", 3.7), ("Al", 4.0), ("Ni", 3.45)])]
    batched = BatchedRelaxer(get_mlff("emt"), RelaxSettings(fmax=0.03, max_steps=200, batch_size=2, optimizer="bfgs")).run(crystals)
    for crystal, b in zip(crystals, batched):
        atoms = crystal.to_ase()
        atoms.calc = EMT()
        opt = BFGS(FrechetCellFilter(atoms), logfile=None)
        assert opt.run(fmax=0.03, steps=200)
        assert b.converged and b.steps == opt.nsteps and b.steps > 3
        assert abs(b.energy_relaxed - atoms.get_potential_energy()) < 1e-8
        np.testing.assert_allclose(b.relaxed.lattice, atoms.cell[:], atol=1e-7)
        frac = np.linalg.solve(atoms.cell[:].T, atoms.positions.T).T
        diff = b.relaxed.frac_coords - frac
        np.testing.assert_allclose(diff - np.round(diff), 0.0, atol=1e-7)  # same sites up to wrapping


def test_bfgs_step_on_a_quadratic_is_newton_after_one_update_and_capped_by_maxstep():
    # E = 1/2 k |r|^2 on one row: the first step uses alpha, later steps learn k
    k = 10.0
    state = BFGSState(BFGSParameters(alpha=70.0, maxstep=10.0))
    r = np.array([[0.3, -0.2, 0.1]])
    step = state.displacement(-k * r, r)
    np.testing.assert_allclose(step, -k * r / 70.0)
    r = r + step
    step = state.displacement(-k * r, r)
    # along the one direction explored, the secant update makes the curvature exact: Newton lands on the minimum
    np.testing.assert_allclose(r + step, 0.0, atol=1e-12)
    capped = BFGSState(BFGSParameters(alpha=1.0, maxstep=0.05)).displacement(np.array([[3.0, 4.0, 0.0]]), np.zeros((1, 3)))
    assert np.sqrt((capped**2).sum()) == pytest.approx(0.05)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown relaxation optimizer 'lbfgs'"):
        RelaxSettings(optimizer="lbfgs")


def test_screen_relaxer_passes_the_optimizer_through():
    from dosmatgen.screen.library_stages import load_mlff_relaxer

    relaxer = load_mlff_relaxer("emt", fmax=0.05, max_steps=50, batch_size=4, optimizer="bfgs")
    assert relaxer.relaxer.settings.optimizer == "bfgs"
    (out,) = relaxer([rattled_fcc("Cu", 3.7, seed=3)])
    assert out.converged and out.steps > 0
    with pytest.raises(ValueError, match="unknown relaxation optimizer"):
        load_mlff_relaxer("emt", optimizer="newton")
