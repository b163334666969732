"""SevenNet backend (optional extra): batched forward equals SevenNet's own ASE calculator, offline weights,
refusal to download, and a batched relaxation with it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sevenn")

from dosmatgen.crystal import Crystal  # noqa: E402
from dosmatgen.errors import CheckpointError  # noqa: E402
from dosmatgen.relax.mlff import available_mlffs, get_mlff  # noqa: E402

pytestmark = [pytest.mark.mlff, pytest.mark.slow]


@pytest.fixture(scope="module")
def sevenn_mlff():
    return get_mlff("sevenn")  # 7net-0: weights inside the sevenn wheel, no network


def _structures():
    from ase.build import bulk

    si = bulk("Si", "diamond", 5.5)
    nacl = bulk("NaCl", "rocksalt", 5.6)
    nacl.rattle(0.05, seed=2)
    cu = bulk("Cu", "fcc", 3.7, cubic=True)
    cu.rattle(0.05, seed=1)
    return [si, nacl, cu]


def test_batched_forward_matches_the_sevenn_calculator(sevenn_mlff):
    from sevenn.calculator import SevenNetCalculator

    atoms = _structures()
    out = sevenn_mlff.compute([a.numbers for a in atoms], [a.positions for a in atoms], [a.cell.array for a in atoms])
    assert not out.errors and "sevenn" in available_mlffs()
    calc = SevenNetCalculator("7net-0", device="cpu")
    for i, a in enumerate(atoms):
        a.calc = calc
        assert out.energy[i] == pytest.approx(a.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(out.forces[i], a.get_forces(), atol=1e-4)
        full = a.get_stress(voigt=False)
        np.testing.assert_allclose(out.stress[i], full, atol=1e-6)
    assert np.abs(out.forces[1]).max() > 0.01 and np.abs(out.stress).max() > 1e-3  # not a vacuous comparison


def test_isolated_structure_is_flagged_not_fatal(sevenn_mlff):
    lone = Crystal(np.array([14]), np.zeros((1, 3)), np.eye(3) * 20.0)  # no neighbour within the cutoff
    si = _structures()[0]
    out = sevenn_mlff.compute([lone.atomic_numbers, si.numbers], [lone.cart_coords, si.positions], [lone.lattice, si.cell.array])
    assert list(out.errors) == [0] and "cutoff" in out.errors[0]
    assert np.isnan(out.energy[0]) and np.isfinite(out.energy[1])


def test_weights_that_need_a_download_are_refused_without_permission(tmp_path):
    with pytest.raises(CheckpointError, match="not on this machine"):
        get_mlff("sevenn", model="7net-omni")
    with pytest.raises(CheckpointError, match="does not exist"):
        get_mlff("sevenn", model=str(tmp_path / "missing.pth"))


def test_batched_relaxation_with_sevenn(sevenn_mlff):
    from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings

    crystals = [Crystal.from_ase(a) for a in _structures()]
    relaxer = BatchedRelaxer(sevenn_mlff, RelaxSettings(fmax=0.05, max_steps=200, batch_size=8))
    results = relaxer.run(crystals)
    assert all(r.converged for r in results), [r.reason for r in results]
    assert all(r.energy_relaxed <= r.energy_initial + 1e-6 for r in results)
    assert relaxer.n_calls == max(r.steps for r in results) + 1  # one MLFF call per optimizer step for the batch
