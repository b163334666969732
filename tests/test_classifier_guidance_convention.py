"""Classifier guidance conventions (issue 19): the per-site-summed guidance energy, the coordinate noise variance,
and masked gradients. Analytic checks on a toy regressor whose prediction is a slice of the atom-type vector."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.diffusion.state import CrystalState
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.sampling.guidance import ClassifierGuidance, regressor_distance, regressor_gradients

D = 5  # DOS bins of the toy regressor
C = 8  # atom-type classes


class SliceRegressor(nn.Module):
    """ŷ_i = a_i[:D] + sin(2π x_i)[0] (a smooth toy regressor: analytic gradients in A and X, zero in L)."""

    def forward(self, atom_types, frac_coords, lattice, t, batch, num_atoms):
        return atom_types[:, :D] + torch.sin(2 * math.pi * frac_coords[:, :1]) + 0.0 * lattice.sum()


def _state(n_atoms: int, seed: int = 0) -> CrystalState:
    g = torch.Generator().manual_seed(seed)
    return CrystalState(
        atom_types=torch.randn(n_atoms, C, generator=g),
        frac_coords=torch.rand(n_atoms, 3, generator=g),
        lattice=(4.0 * torch.eye(3)).unsqueeze(0),
        batch=torch.zeros(n_atoms, dtype=torch.long),
        num_atoms=torch.tensor([n_atoms]),
    )


@pytest.mark.parametrize("n", [1, 4, 9])
def test_each_conditioned_site_gets_a_unit_norm_pull_whatever_n(n):
    """E = Σ_i ‖ŷ_i − y_i‖, so ∂E/∂a_i[:D] = (ŷ_i − y_i)/‖ŷ_i − y_i‖: norm 1 for every site and every n.
    One L2 norm per crystal (the old convention) gives (ŷ_i − y_i)/‖ŷ − y‖, about 1/√n of it."""
    state = _state(n)
    reg = SliceRegressor()
    cond = DOSCondition(dos=torch.randn(n, D, generator=torch.Generator().manual_seed(1)), mask=torch.ones(n))
    t = torch.tensor([10])
    grads = regressor_gradients(reg, state, t, cond)
    with torch.no_grad():
        diff = reg(state.atom_types, state.frac_coords, state.lattice, t, state.batch, state.num_atoms) - cond.dos
    expected = diff / diff.norm(dim=-1, keepdim=True)
    assert torch.allclose(grads.atom_types[:, :D], expected, atol=1e-5)
    assert torch.allclose(grads.atom_types[:, :D].norm(dim=-1), torch.ones(n), atol=1e-5)
    assert torch.all(grads.atom_types[:, D:] == 0)
    assert float(regressor_distance(reg, state, t, cond)[0]) == pytest.approx(float(diff.norm(dim=-1).sum()), rel=1e-5)


def test_unconditioned_sites_add_no_energy_and_crystals_are_separate():
    """Two crystals of 3 atoms; in the second only atom 0 is conditioned."""
    a, b = _state(3, seed=2), _state(3, seed=3)
    state = CrystalState(torch.cat([a.atom_types, b.atom_types]), torch.cat([a.frac_coords, b.frac_coords]),
                         torch.cat([a.lattice, b.lattice]), torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([3, 3]))
    y = torch.randn(6, D, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([1.0, 1, 1, 1, 0, 0])
    reg = SliceRegressor()
    t = torch.tensor([10, 10])
    energy = regressor_distance(reg, state, t, DOSCondition(dos=y, mask=mask))
    with torch.no_grad():
        per_site = (reg(state.atom_types, state.frac_coords, state.lattice, t, state.batch, state.num_atoms) - y).norm(dim=-1)
    assert torch.allclose(energy, torch.stack([per_site[:3].sum(), per_site[3]]), rtol=1e-5)


def test_coordinate_step_uses_the_predictor_noise_variance():
    """x moves by strength · σ_{t−1}²(σ_t² − σ_{t−1}²)/σ_t² · ∂E/∂x (DiffCSP's guided sampler), not by the drift
    multiplier σ_t² − σ_{t−1}²; L and A by the DDPM posterior variance."""
    diffusion = JointDiffusion(DiffusionConfig(num_steps=10, num_classes=C, beta_max=0.99))  # coarse: σ ratio 1.67/step
    n, t_step, strength = 4, 6, 3.0
    state = _state(n, seed=5)
    cond = DOSCondition(dos=torch.zeros(n, D), mask=torch.ones(n))
    t = torch.full((1,), t_step)
    scales = diffusion.predictor_scales(t, 1)
    guidance = ClassifierGuidance(SliceRegressor(), strength=strength)
    moved = guidance.adjust(state, state, t, scales, cond)
    grads = regressor_gradients(guidance.regressor, state, t, cond)
    s_t, s_prev = diffusion.sigmas[t_step], diffusion.sigmas[t_step - 1]
    var_x = s_prev**2 * (s_t**2 - s_prev**2) / s_t**2
    assert float(var_x) < 0.5 * float(s_t**2 - s_prev**2)  # the two conventions differ measurably here
    expected_x = torch.remainder(state.frac_coords - strength * var_x * grads.frac_coords, 1.0)
    assert torch.allclose(moved.frac_coords, expected_x, atol=1e-6)
    assert torch.any(grads.frac_coords != 0)
    post = diffusion.posterior_sigmas[t_step]
    assert torch.allclose(moved.atom_types, state.atom_types - strength * post**2 * grads.atom_types, atol=1e-6)


def test_masked_gradients_zero_the_unconditioned_atoms_only():
    diffusion = JointDiffusion(DiffusionConfig(num_steps=100, num_classes=C, beta_max=0.99))
    n = 4
    state = _state(n, seed=6)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    cond = DOSCondition(dos=torch.zeros(n, D), mask=mask)
    t = torch.full((1,), 50)
    scales = diffusion.predictor_scales(t, 1)

    class Coupled(nn.Module):
        """ŷ_i depends on every atom of the crystal, so unconditioned atoms get a gradient unless masked."""

        def forward(self, atom_types, frac_coords, lattice, t, batch, num_atoms):
            mixed = atom_types[:, :D] + atom_types[:, :D].mean(0, keepdim=True)
            return mixed + torch.sin(2 * math.pi * frac_coords[:, :1]).mean(0, keepdim=True) + lattice.sum() * 0.01

    free = ClassifierGuidance(Coupled(), strength=2.0).adjust(state, state, t, scales, cond)
    masked = ClassifierGuidance(Coupled(), strength=2.0, mask_gradients=True).adjust(state, state, t, scales, cond)
    off = mask == 0
    # unmasked: the unconditioned atoms move too (through the coupling)
    assert torch.all((free.atom_types[off] - state.atom_types[off]).abs().sum(-1) > 0)
    # masked: they do not move at all, in A and in X; the conditioned atoms move exactly as without the mask
    assert torch.equal(masked.atom_types[off], state.atom_types[off])
    assert torch.equal(masked.frac_coords[off], torch.remainder(state.frac_coords[off], 1.0))
    assert torch.allclose(masked.atom_types[~off], free.atom_types[~off])
    assert torch.allclose(masked.frac_coords[~off], free.frac_coords[~off])
    assert torch.all((masked.atom_types[~off] - state.atom_types[~off]).abs().sum(-1) > 0)
    # the lattice (global) is guided either way
    assert torch.allclose(masked.lattice, free.lattice) and not torch.equal(masked.lattice, state.lattice)


@pytest.mark.parametrize("flag", [False, True])
def test_the_sampling_request_option_reaches_the_guidance(flag):
    from types import SimpleNamespace

    from dosmatgen.sampling.generate import build_guidance
    from dosmatgen.sampling.request import SamplingRequest

    request = SamplingRequest(checkpoint="x.pt", guidance="classifier", mask_classifier_gradients=flag)
    prepared = SimpleNamespace(guidance_name="classifier", request=request, regressor=SliceRegressor(), unconditional_model=None)
    guidance = build_guidance(prepared)
    assert isinstance(guidance, ClassifierGuidance) and guidance.mask_gradients is flag


def test_one_classifier_strength_default_everywhere_is_the_validation_choice():
    """The default strength is the value chosen on the validation split (5, reports/evaluation-issue19 part E),
    and the sampler, the sampling request, the evaluation settings, the evaluation's guidance builder and both
    CLIs all take it from the one constant (before: 50 in six places, tuned for the old one-norm convention)."""
    import dataclasses
    import inspect

    from dosmatgen.cli.main import build_parser
    from dosmatgen.evaluation.reconstruction import build_guidance
    from dosmatgen.evaluation.settings import EvaluationSettings
    from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH
    from dosmatgen.sampling.request import SamplingRequest

    assert DEFAULT_CLASSIFIER_STRENGTH == 5.0
    defaults = {
        "ClassifierGuidance": ClassifierGuidance(nn.Identity()).strength,
        "SamplingRequest": {f.name: f.default for f in dataclasses.fields(SamplingRequest)}["strength"],
        "EvaluationSettings": EvaluationSettings().strength,
        "build_guidance": inspect.signature(build_guidance).parameters["strength"].default,
        "build_guidance(classifier)": build_guidance("classifier", regressor=nn.Identity()).strength,
    }
    parser = build_parser()
    for command in ("sample", "evaluate"):
        sub = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(command))
        defaults[f"dosmatgen {command} --strength"] = next(a.default for a in sub._actions if a.dest == "strength")
    assert defaults == {k: DEFAULT_CLASSIFIER_STRENGTH for k in defaults}
