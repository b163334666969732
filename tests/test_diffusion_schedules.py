"""The diffusion schedules match their closed forms; the forward process and reverse steps are consistent."""

from __future__ import annotations

import math

import pytest
import torch

from dosmatgen.diffusion import BetaSchedule, CrystalState, DiffusionConfig, JointDiffusion, SigmaSchedule, StateNoise
from dosmatgen.model import DenoiserOutput


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cosine_schedule_closed_form():
    T, s = 1000, 0.008
    sched = BetaSchedule.cosine(T, s)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 2, 10, 500, 900, 999, 1000):
        beta = min(max(1 - f(t) / f(t - 1), 1e-4), 0.9999)
        assert sched.betas[t].item() == pytest.approx(beta, rel=1e-12, abs=1e-15)
    # without clipping (the clip bites only at the ends) ᾱ_t = f(t)/f(0)
    for t in (5, 100, 500, 800):
        assert sched.alpha_bars[t].item() == pytest.approx(f(t) / f(0), rel=1e-3)
    # index 0 is the clean data; the clip holds; ᾱ is the running product of α
    assert sched.betas[0] == 0 and sched.alpha_bars[0] == 1
    assert sched.betas[1:].min() >= 1e-4 and sched.betas[1:].max() <= 0.9999
    assert sched.betas[1].item() == pytest.approx(1e-4) and sched.betas[T].item() == pytest.approx(0.9999)
    torch.testing.assert_close(sched.alpha_bars, torch.cumprod(1 - sched.betas, 0))
    assert sched.alpha_bars[T] < 1e-6


def test_posterior_sigmas_closed_form():
    sched = BetaSchedule.cosine(200)
    b, ab = sched.betas, sched.alpha_bars
    for t in (2, 50, 199, 200):
        expected = math.sqrt(b[t] * (1 - ab[t - 1]) / (1 - ab[t]))
        assert sched.posterior_sigmas[t].item() == pytest.approx(expected, rel=1e-12)
    assert sched.posterior_sigmas[1] == 0 and sched.posterior_sigmas[0] == 0


def test_geometric_sigma_schedule():
    T = 1000
    sched = SigmaSchedule.geometric(T, 0.005, 0.5)
    assert sched.sigmas[0] == 0
    assert sched.sigmas[1].item() == pytest.approx(0.005) and sched.sigmas[T].item() == pytest.approx(0.5)
    for t in (1, 250, 777, 1000):
        assert sched.sigmas[t].item() == pytest.approx(0.005 * 100 ** ((t - 1) / (T - 1)), rel=1e-12)
    ratios = sched.sigmas[2:] / sched.sigmas[1:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 100 ** (1 / (T - 1))))
    # σ_norm = E[score²] tends to 1/σ² while the wrapping is negligible, and is far smaller near σ = 0.5
    assert sched.sigma_norms[1].item() == pytest.approx(1 / 0.005**2, rel=1e-9)
    assert sched.sigma_norms[300].item() == pytest.approx(1 / sched.sigmas[300].item() ** 2, rel=1e-6)
    assert sched.sigma_norms[T].item() < 0.01 / 0.5**2


def test_forward_process_statistics():
    diff = JointDiffusion(DiffusionConfig(num_steps=100))
    gen = torch.Generator().manual_seed(0)
    n = 4000
    clean = CrystalState(
        atom_types=torch.nn.functional.one_hot(torch.full((n,), 7), 100).float(),
        frac_coords=torch.full((n, 3), 0.25),
        lattice=torch.eye(3).repeat(n, 1, 1) * 5.0,
        batch=torch.arange(n),
        num_atoms=torch.ones(n, dtype=torch.long),
    )
    t = 40
    noisy = diff.q_sample(clean, t, StateNoise.randn_like(clean, gen))
    ab = diff.alpha_bars[t].item()
    assert noisy.lattice[:, 0, 0].mean().item() == pytest.approx(5 * math.sqrt(ab), abs=0.05)
    assert noisy.lattice[:, 0, 0].std().item() == pytest.approx(math.sqrt(1 - ab), rel=0.05)
    assert noisy.atom_types[:, 7].mean().item() == pytest.approx(math.sqrt(ab), abs=0.05)
    disp = torch.remainder(noisy.frac_coords - 0.25 + 0.5, 1.0) - 0.5
    assert disp.std().item() == pytest.approx(diff.sigmas[t].item(), rel=0.05)
    assert noisy.frac_coords.min() >= 0 and noisy.frac_coords.max() < 1


def test_predictor_step_inverts_ddpm_with_true_eps():
    """With the true ε and the posterior mean, one reverse step from t lands on the DDPM posterior mean."""
    diff = JointDiffusion(DiffusionConfig(num_steps=50))
    gen = torch.Generator().manual_seed(1)
    l0 = torch.randn(3, 3, 3, generator=gen)
    state0 = CrystalState(torch.randn(4, 100, generator=gen), torch.rand(4, 3, generator=gen), l0,
                          torch.tensor([0, 1, 1, 2]), torch.tensor([1, 2, 1]))
    noise = StateNoise.randn_like(state0, gen)
    t = 20
    noisy = diff.q_sample(state0, t, noise)
    pred = DenoiserOutput(torch.zeros(4, 3), noise.lattice, noise.atom_types)
    prev = diff.predictor_step(noisy, pred, t, StateNoise.zeros_like(noisy))
    b, a, ab, ab_prev = (diff.betas[t], diff.alphas[t], diff.alpha_bars[t], diff.alpha_bars[t - 1])
    mean = (ab_prev.sqrt() * b / (1 - ab)) * l0 + (a.sqrt() * (1 - ab_prev) / (1 - ab)) * noisy.lattice
    torch.testing.assert_close(prev.lattice, mean, rtol=1e-4, atol=1e-5)
    # at t = 1 every noise scale vanishes and the step returns the clean data exactly (for the true ε)
    noisy1 = diff.q_sample(state0, 1, noise)
    clean = diff.predictor_step(noisy1, pred, 1, StateNoise.randn_like(state0, gen))
    torch.testing.assert_close(clean.lattice, l0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(clean.atom_types, state0.atom_types, rtol=1e-4, atol=1e-4)


def test_coordinate_steps_follow_the_score():
    diff = JointDiffusion(DiffusionConfig(num_steps=100))
    state = CrystalState(torch.zeros(2, 100), torch.tensor([[0.1, 0.5, 0.9], [0.2, 0.2, 0.2]]), torch.eye(3)[None],
                         torch.zeros(2, dtype=torch.long), torch.tensor([2]))
    out = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    t = 60
    pred = DenoiserOutput(out, torch.zeros(1, 3, 3), torch.zeros(2, 100))
    nxt = diff.predictor_step(state, pred, t, StateNoise.zeros_like(state))
    step = (diff.sigmas[t] ** 2 - diff.sigmas[t - 1] ** 2) * diff.sigma_norms[t].sqrt()
    torch.testing.assert_close(nxt.frac_coords, torch.remainder(state.frac_coords + step * out, 1.0))
    lr = 1e-3
    corr = diff.corrector_step(state, out, t, lr, torch.zeros(2, 3))
    cstep = lr * (diff.sigmas[t] / diff.sigmas[1]) ** 2 * diff.sigma_norms[t].sqrt()
    torch.testing.assert_close(corr.frac_coords, torch.remainder(state.frac_coords + cstep * out, 1.0))
    torch.testing.assert_close(corr.lattice, state.lattice)
    # the injected noise has std sqrt(2·step) for the corrector
    z = torch.ones(2, 3)
    corr_z = diff.corrector_step(state, torch.zeros(2, 3), t, lr, z)
    expect = torch.remainder(state.frac_coords + torch.sqrt(2 * lr * (diff.sigmas[t] / diff.sigmas[1]) ** 2), 1.0)
    torch.testing.assert_close(corr_z.frac_coords, expect)


def test_timestep_validation():
    diff = JointDiffusion(DiffusionConfig(num_steps=10))
    state = diff.prior_sample(torch.tensor([2, 3]), torch.Generator().manual_seed(0))
    assert state.frac_coords.shape == (5, 3) and state.lattice.shape == (2, 3, 3)
    assert state.batch.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="1..10"):
        diff.q_sample(state, 0, StateNoise.zeros_like(state))
    with pytest.raises(ValueError, match="1..10"):
        diff.q_sample(state, 11, StateNoise.zeros_like(state))
    steps = diff.sample_timesteps(10000, torch.Generator().manual_seed(0))
    assert steps.min() == 1 and steps.max() == 10
