"""Classifier-free guidance: the combination, w = 0, and one batched forward call per denoiser evaluation."""

from __future__ import annotations

import torch

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.sampling import ClassifierFreeGuidance, NoGuidance, PredictorCorrectorSampler, prior_start, site_condition
from dosmatgen.sampling.guidance import TwoPassClassifierFreeGuidance, call_denoiser


class CallSpy(torch.nn.Module):
    """Wraps a denoiser and records, per call, the number of crystals and the condition it got."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config
        self.calls: list[tuple[int, object]] = []

    def forward(self, atom_types, frac_coords, lattice, t, batch, cond=None, num_atoms=None):
        self.calls.append((lattice.shape[0], cond))
        return self.model(atom_types, frac_coords, lattice, t, batch, cond, num_atoms)


def _setup(num_steps: int = 20, seed: int = 0):
    torch.manual_seed(seed)
    model = CSPNetDenoiser(DenoiserConfig.tiny()).eval()
    diffusion = JointDiffusion(DiffusionConfig(num_steps=num_steps))
    num_atoms = torch.tensor([3, 5, 4])
    gen = torch.Generator().manual_seed(seed)
    start = prior_start(diffusion, num_atoms, gen)
    cond = site_condition(torch.randn(400, generator=gen), num_atoms, (0, 2))
    return model, diffusion, start, cond


def test_w0_equals_the_conditional_prediction():
    model, diffusion, start, cond = _setup()
    t = torch.full((3,), 7)
    with torch.no_grad():
        plain = call_denoiser(model, start.state, t, cond)
        cfg = ClassifierFreeGuidance(w=0.0).predict(model, start.state, t, cond)
    for field in ("coord_score", "lattice_eps", "type_eps"):
        torch.testing.assert_close(getattr(cfg, field), getattr(plain, field), atol=1e-5, rtol=1e-5)


def test_cfg_combines_all_three_fields_as_one_plus_w_cond_minus_w_uncond():
    model, diffusion, start, cond = _setup()
    t = torch.full((3,), 11)
    w = 1.5
    with torch.no_grad():
        c = call_denoiser(model, start.state, t, cond)
        u = call_denoiser(model, start.state, t, None)
        one_pass = ClassifierFreeGuidance(w=w).predict(model, start.state, t, cond)
        two_pass = TwoPassClassifierFreeGuidance(w=w).predict(model, start.state, t, cond)
    for field in ("coord_score", "lattice_eps", "type_eps"):
        expected = (1 + w) * getattr(c, field) - w * getattr(u, field)
        torch.testing.assert_close(getattr(one_pass, field), expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(getattr(two_pass, field), expected, atol=1e-4, rtol=1e-4)
    # the unconditional half really is unconditional: the condition changes the output
    assert not torch.allclose(c.type_eps, u.type_eps)


def test_cfg_uses_one_batched_forward_call_per_denoiser_evaluation():
    model, diffusion, start, cond = _setup(num_steps=12)
    spy = CallSpy(model)
    out = PredictorCorrectorSampler(spy, diffusion, step_lr=0.0).run(start, cond, ClassifierFreeGuidance(1.0))
    assert len(spy.calls) == 12 == out.model_calls  # predictor only: one call per step
    assert all(b == 2 * 3 for b, _ in spy.calls)  # conditioned and unconditioned halves in the same call
    for _, c in spy.calls:
        n = cond.mask.shape[0]
        torch.testing.assert_close(c.mask[:n], cond.mask)
        assert float(c.mask[n:].abs().sum()) == 0.0

    spy.calls.clear()
    out = PredictorCorrectorSampler(spy, diffusion, step_lr=1e-4).run(start, cond, ClassifierFreeGuidance(1.0))
    assert len(spy.calls) == 24 == out.model_calls  # corrector + predictor, each one call
    assert all(b == 6 for b, _ in spy.calls)


def test_no_guidance_with_a_condition_is_a_single_conditional_pass():
    model, diffusion, start, cond = _setup(num_steps=5)
    spy = CallSpy(model)
    PredictorCorrectorSampler(spy, diffusion, step_lr=0.0).run(start, cond, NoGuidance())
    assert len(spy.calls) == 5 and all(b == 3 and torch.equal(c.mask, cond.mask) and torch.equal(c.dos, cond.dos) for b, c in spy.calls)
