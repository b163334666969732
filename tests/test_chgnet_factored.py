"""The factored CHGNet forward (dosmatgen.relax.chgnet_factored) equals CHGNet's own ``_compute`` to float32 rounding:
energies, forces and stresses of single and mixed batches, with and without angles, and whole relaxations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("chgnet")

from dosmatgen.errors import InvalidRecordError  # noqa: E402
from dosmatgen.io.structure_files import read_structures  # noqa: E402
from dosmatgen.relax.mlff import get_mlff  # noqa: E402

RELAX_SET = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "relax64.extxyz"


@pytest.fixture(scope="module")
def backends():
    factored = get_mlff("chgnet")
    own = get_mlff("chgnet", model=factored.model, forward_code="chgnet")
    return factored, own


@pytest.fixture(scope="module")
def crystals():
    return read_structures(RELAX_SET)[1]


def _n_angles(mlff, crystal) -> int:
    g = mlff.graph_from_arrays(crystal.atomic_numbers, crystal.cart_coords, crystal.lattice)
    return int(g.bond_graph.shape[0]) if g.bond_graph.dim() == 2 else 0


def _assert_close(a, b, n_atoms):
    assert np.all(np.isfinite(a.energy))
    np.testing.assert_allclose(a.energy / n_atoms, b.energy / n_atoms, rtol=0, atol=2e-6)  # eV/atom
    for fa, fb in zip(a.forces, b.forces, strict=True):
        np.testing.assert_allclose(fa, fb, rtol=0, atol=5e-4)  # eV/A
    np.testing.assert_allclose(a.stress, b.stress, rtol=0, atol=2e-6)  # eV/A^3 (3e-4 GPa)


def test_default_is_factored_and_equal_to_chgnet_on_a_mixed_batch(backends, crystals):
    factored, own = backends
    assert factored.forward_code == "factored" and own.forward_code == "chgnet"
    batch = crystals[:40]
    angles = [_n_angles(factored, c) for c in batch]
    assert min(angles) == 0 and max(angles) > 500  # both paths of the network inside one batch
    n = np.array([c.num_atoms for c in batch])
    out_f, out_o = factored.compute_crystals(batch), own.compute_crystals(batch)
    _assert_close(out_f, out_o, n)
    # the comparison is sharp: forces are O(1) eV/A here, so the 5e-4 tolerance cannot hide a wrong block
    assert max(float(np.abs(f).max()) for f in out_o.forces) > 1.0


def test_equal_for_structures_without_angles_alone(backends, crystals):
    factored, own = backends
    batch = [c for c in crystals if _n_angles(factored, c) == 0][:4]
    assert batch
    n = np.array([c.num_atoms for c in batch])
    _assert_close(factored.compute_crystals(batch), own.compute_crystals(batch), n)


def test_equal_with_perturbed_weights(crystals):
    """Random changes to every weight and bias (so no block or bias can be dropped or swapped by luck)."""
    base = get_mlff("chgnet")
    model = base.model
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype) * (p.abs().mean() + 1e-3))
    factored = get_mlff("chgnet", model=model)
    own = get_mlff("chgnet", model=model, forward_code="chgnet")
    batch = crystals[8:20]
    n = np.array([c.num_atoms for c in batch])
    a, b = factored.compute_crystals(batch), own.compute_crystals(batch)
    _assert_close(a, b, n)
    assert np.abs(a.energy - get_mlff("chgnet").compute_crystals(batch).energy).max() > 1e-3  # the change mattered


def test_weights_changed_after_construction_are_used(crystals):
    """The factored blocks are read from the live weights, so an in-place change (fine-tuning, load_state_dict)
    reaches the factored forward exactly as it reaches CHGNet's own."""
    factored = get_mlff("chgnet")
    own = get_mlff("chgnet", model=factored.model, forward_code="chgnet")
    batch = crystals[10:14]
    before = factored.compute_crystals(batch).energy
    with torch.no_grad():
        for layer in factored.model.angle_layers:  # first layers that the factored code splits
            layer.twoBody_bond.mlp_core.layers[1].weight.mul_(1.5)
        for layer in factored.model.atom_conv_layers:
            layer.twoBody_atom.mlp_gate.layers[0].weight.mul_(1.5)
    n = np.array([c.num_atoms for c in batch])
    after = factored.compute_crystals(batch)
    assert np.abs(after.energy - before).max() > 1e-3
    _assert_close(after, own.compute_crystals(batch), n)


def test_training_mode_is_refused(crystals):
    factored = get_mlff("chgnet")
    factored.model.train()
    with pytest.raises(RuntimeError, match="call model.eval\\(\\) first"):
        factored.compute_crystals(crystals[:2])
    factored.model.eval()
    assert np.all(np.isfinite(factored.compute_crystals(crystals[:2]).energy))


#: CHGNet constructor options the pretrained model does not use, each on a small random model
ARCHITECTURES = [
    {}, {"gMLP_norm": None}, {"gMLP_norm": "batch"}, {"conv_norm": "layer"}, {"mlp_first": False},
    {"mlp_first": False, "read_out": "attn"}, {"is_intensive": False}, {"update_bond": False}, {"update_angle": False},
    {"n_conv": 1}, {"n_conv": 2}, {"atom_fea_dim": 16, "bond_fea_dim": 24, "angle_fea_dim": 8, "mlp_hidden_dims": (8,)},
    {"atom_conv_hidden_dim": [32, 16], "bond_conv_hidden_dim": [8], "angle_layer_hidden_dim": 12},
    {"mlp_out_bias": True}, {"mlp_first": False, "final_mlp": "gated", "mlp_hidden_dims": [16, 16]},
    {"readout_norm": None},
]


@pytest.mark.parametrize("options", ARCHITECTURES, ids=[str(o) or "default" for o in ARCHITECTURES])
def test_equal_for_other_architectures(options, crystals):
    import contextlib
    import io

    from chgnet.model import CHGNet

    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet(composition_model=None, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # fresh models have zero biases and unit norms: make every term count
    factored = get_mlff("chgnet", model=model)
    own = get_mlff("chgnet", model=model, forward_code="chgnet")
    batch = [crystals[0], crystals[12], crystals[40]]  # 0 to 1,200 angles
    a, b = factored.compute_crystals(batch), own.compute_crystals(batch)
    assert not a.errors and np.all(np.isfinite(a.energy))
    scale = max(1.0, float(np.abs(b.energy).max()))
    np.testing.assert_allclose(a.energy, b.energy, rtol=0, atol=1e-5 * scale)
    for fa, fb in zip(a.forces, b.forces, strict=True):
        np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-4 * max(1.0, float(np.abs(fb).max())))
    np.testing.assert_allclose(a.stress, b.stress, rtol=0, atol=1e-5 * max(1.0, float(np.abs(b.stress).max())))


def test_relaxations_agree(backends, crystals):
    from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings

    factored, own = backends
    batch = crystals[10:16]
    settings = RelaxSettings(fmax=0.05, max_steps=150, batch_size=8)
    mine = BatchedRelaxer(factored, settings).run(batch)
    theirs = BatchedRelaxer(own, settings).run(batch)
    for a, b in zip(mine, theirs, strict=True):
        assert a.status == b.status
        assert abs(a.energy_relaxed - b.energy_relaxed) / a.initial.num_atoms < 2e-3  # eV/atom


def test_bad_forward_code_is_named():
    with pytest.raises(InvalidRecordError, match="forward_code must be one of factored, chgnet, got 'fast'"):
        get_mlff("chgnet", forward_code="fast")


def test_unexpected_layers_before_the_first_linear_are_refused():
    from types import SimpleNamespace

    from dosmatgen.relax.chgnet_factored import _first_linear

    mlp = SimpleNamespace(layers=torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match="unexpected layers before the first Linear"):
        _first_linear(mlp)
    with pytest.raises(ValueError, match="no Linear layer"):
        _first_linear(SimpleNamespace(layers=torch.nn.Sequential(torch.nn.SiLU())))
    first, rest = _first_linear(SimpleNamespace(layers=torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(4, 3),
                                                                            torch.nn.SiLU())))
    assert first.out_features == 3 and len(rest) == 1
