"""MLFF backends behind one interface: factory, units, analytic checks, CHGNet batched forward, Orb loading."""

from __future__ import annotations

import numpy as np
import pytest

from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.relax.mlff import MLFFOutput, available_mlffs, get_mlff
from tests.relax_helpers import lj_cluster_cell, rattled_fcc


def _finite_difference(mlff, crystal, h=1e-5):
    """Numerical forces (eV/Å) and stress (eV/Å^3, ASE convention) of one crystal."""
    z, pos, cell = crystal.atomic_numbers, crystal.cart_coords, crystal.lattice
    energy = lambda p, c: float(mlff.compute([z], [p], [c]).energy[0])  # noqa: E731
    forces = np.zeros_like(pos)
    for i in range(len(pos)):
        for d in range(3):
            dp = np.zeros_like(pos)
            dp[i, d] = h
            forces[i, d] = -(energy(pos + dp, cell) - energy(pos - dp, cell)) / (2 * h)
    stress = np.zeros((3, 3))
    vol = abs(np.linalg.det(cell))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = h
            plus, minus = np.eye(3) + eps, np.eye(3) - eps
            stress[a, b] = (energy(pos @ plus.T, cell @ plus.T) - energy(pos @ minus.T, cell @ minus.T)) / (2 * h * vol)
    return forces, stress


def test_factory_names_and_unknown_name():
    assert {"chgnet", "orb", "emt", "lj"} <= set(available_mlffs())
    with pytest.raises(InvalidRecordError, match="unknown MLFF"):
        get_mlff("no-such-potential")


@pytest.mark.parametrize("name,crystal", [("lj", lj_cluster_cell(26, seed=1)), ("emt", rattled_fcc("Cu", 3.7, seed=2))])
def test_analytic_forces_and_stress_are_energy_derivatives(name, crystal):
    mlff = get_mlff(name)
    out = mlff.compute_crystals([crystal])
    forces, stress = _finite_difference(mlff, crystal)
    np.testing.assert_allclose(out.forces[0], forces, atol=2e-5)
    np.testing.assert_allclose(out.stress[0], 0.5 * (stress + stress.T), atol=2e-6)
    assert np.abs(out.forces[0]).max() > 0.01  # the check is not vacuous


def test_lj_batch_equals_one_by_one():
    mlff = get_mlff("lj")
    crystals = [lj_cluster_cell(z, seed=z) for z in (3, 26, 55)]
    batch = mlff.compute_crystals(crystals)
    for i, c in enumerate(crystals):
        one = mlff.compute_crystals([c])
        assert batch.energy[i] == pytest.approx(one.energy[0], abs=1e-12)
        np.testing.assert_allclose(batch.forces[i], one.forces[0], atol=1e-12)
        np.testing.assert_allclose(batch.stress[i], one.stress[0], atol=1e-12)


def test_output_shapes_are_checked():
    with pytest.raises(ValueError, match="inconsistent"):
        MLFFOutput(np.zeros(2), [np.zeros((1, 3))], np.zeros((1, 3, 3)))


@pytest.mark.mlff
@pytest.mark.slow  # ~10 s on an idle 2-core box, over 60 s on the shared one
def test_chgnet_batched_forward_matches_chgnet_predict_graph():
    from pymatgen.core import Structure  # noqa: F401

    mlff = get_mlff("chgnet")
    assert mlff.supported_elements == frozenset(range(1, 95))
    crystals = [rattled_fcc("Cu", 3.7, seed=0), lj_cluster_cell(14, seed=1), rattled_fcc("Al", 4.1, seed=3)]
    out = mlff.compute_crystals(crystals)
    ref = mlff.model.predict_graph([mlff.graph_converter(c.to_pymatgen()) for c in crystals], task="efs", batch_size=3)
    for i, c in enumerate(crystals):
        assert out.energy[i] / c.num_atoms == pytest.approx(float(ref[i]["e"]), abs=2e-5)  # CHGNet: eV/atom
        np.testing.assert_allclose(out.forces[i], ref[i]["f"], atol=2e-4)
        np.testing.assert_allclose(out.stress[i] * 160.21766208, ref[i]["s"], atol=2e-3)  # CHGNet reports GPa
    # batch of three equals three batches of one
    for i, c in enumerate(crystals):
        one = mlff.compute_crystals([c])
        assert one.energy[0] == pytest.approx(out.energy[i], abs=1e-4)
    # a structure with an isolated atom is reported per structure, the others still get values
    lonely = type(crystals[0])(np.array([29]), np.zeros((1, 3)), np.eye(3) * 7.0)
    mixed = mlff.compute_crystals([crystals[0], lonely])
    assert np.isfinite(mixed.energy[0]) and np.isnan(mixed.energy[1]) and "isolated" in mixed.errors[1]


@pytest.mark.mlff
def test_orb_without_weights_says_how_to_supply_them(tmp_path):
    with pytest.raises(CheckpointError) as err:
        get_mlff("orb")
    msg = str(err.value)
    assert "weights_path" in msg and "--mlff-weights" in msg and "allow_download" in msg and "orb-v2" in msg
    with pytest.raises(CheckpointError, match="does not exist"):
        get_mlff("orb", weights_path=tmp_path / "missing.ckpt")


@pytest.mark.slow
@pytest.mark.mlff
def test_orb_random_weight_architecture_runs_batched_offline():
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    module = pretrained.orb_v3_conservative_architecture(
        latent_dim=32, base_mlp_hidden_dim=64, head_mlp_hidden_dim=32, num_message_passing_steps=2,
        device="cpu", system_config=SystemConfig(radius=6.0, max_num_neighbors=20),
    )
    mlff = get_mlff("orb", module=module)
    crystals = [rattled_fcc("Cu", 3.7, seed=0), lj_cluster_cell(14, seed=1)]
    out = mlff.compute_crystals(crystals)
    assert out.energy.shape == (2,) and out.stress.shape == (2, 3, 3)
    assert [f.shape for f in out.forces] == [(4, 3), (4, 3)]
    assert np.all(np.isfinite(out.energy)) and all(np.all(np.isfinite(f)) for f in out.forces)
    one = mlff.compute_crystals(crystals[1:])
    assert one.energy[0] == pytest.approx(out.energy[1], rel=1e-4, abs=1e-4)
    assert 118 in mlff.supported_elements


@pytest.mark.slow
@pytest.mark.mlff
def test_orb_v2_loads_a_local_checkpoint_file(tmp_path):
    """The paper's force field from a LOCAL weights file (as on a cluster without downloads): an orb-v2 state dict
    saved to disk (random weights here: the real file is 100 MB and needs a network) loads through weights_path and
    gives the same energies as the in-memory module."""
    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    torch.manual_seed(0)
    module = pretrained.orb_v2_architecture(device="cpu", system_config=SystemConfig(radius=6.0, max_num_neighbors=20))
    path = tmp_path / "orb-v2-local.ckpt"
    torch.save(module.state_dict(), path)
    from_file = get_mlff("orb", model="orb-v2", weights_path=path)
    assert from_file.version.endswith("/orb-v2/orb-v2-local.ckpt")
    crystals = [rattled_fcc("Cu", 3.7, seed=0), lj_cluster_cell(14, seed=1)]
    a = from_file.compute_crystals(crystals)
    b = get_mlff("orb", module=module.eval()).compute_crystals(crystals)
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(a.energy))
