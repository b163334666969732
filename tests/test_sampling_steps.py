"""Fewer-step sampling: the strided grid, the re-spaced schedules, the jump step's closed form, S = T reproducing the
one-step predictor–corrector sampler bit for bit, and a trained tiny model sampled at small S."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from dosmatgen.diffusion import BetaSchedule, CrystalState, DiffusionConfig, JointDiffusion, SigmaSchedule, StateNoise
from dosmatgen.diffusion.schedules import reverse_steps, strided_steps
from dosmatgen.errors import InvalidRecordError
from dosmatgen.evaluation.settings import EvaluationSettings
from dosmatgen.model import DenoiserOutput
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.sampling import ClassifierFreeGuidance, PredictorCorrectorSampler, prior_start, site_condition, template_start
from dosmatgen.sampling.generate import output_to_crystals
from dosmatgen.sampling.guidance import Guidance
from dosmatgen.sampling.sampler import SamplingOutput
from dosmatgen.sampling.start import SamplingStart
from sampling_fixture_helpers import PEAK_NUM_CLASSES, fit_denoiser, peak_dos, peak_world


def test_strided_grid_and_reverse_steps():
    assert strided_steps(1000, 100).tolist() == list(range(10, 1001, 10))
    assert strided_steps(1000, 1000).tolist() == list(range(1, 1001))
    assert strided_steps(1000, 1).tolist() == [1000]
    g = strided_steps(1000, 300)
    assert g.numel() == 300 and int(g[-1]) == 1000 and bool((g[1:] > g[:-1]).all())
    assert reverse_steps(1000, 100, 1000) == list(range(1000, -1, -10))
    assert reverse_steps(1000, 100, 200) == list(range(200, -1, -10))  # a template start takes the kept steps below it
    assert reverse_steps(1000, 100, 205) == [205, *range(200, -1, -10)]  # a start off the grid is visited first
    assert reverse_steps(1000, None, 3) == [3, 2, 1, 0] == reverse_steps(1000, 1000, 3)
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="sampling steps"):
            strided_steps(1000, bad)
    with pytest.raises(ValueError, match="t_start"):
        reverse_steps(1000, 100, 0)


@pytest.mark.parametrize("s", [1, 7, 50, 100, 333, 999])
def test_respaced_schedules_keep_alpha_bar_and_sigma_at_the_kept_steps(s):
    beta = BetaSchedule.cosine(1000)
    sigma = SigmaSchedule.geometric(1000)
    kept = torch.cat([torch.zeros(1, dtype=torch.long), strided_steps(1000, s)])
    rb = beta.respaced(kept)
    assert rb.num_steps == s
    torch.testing.assert_close(rb.alpha_bars, beta.alpha_bars[kept], rtol=1e-12, atol=0.0)
    assert bool((rb.betas[1:] > 0).all()) and bool((rb.betas[1:] < 1).all())
    # the jump's posterior variance is q(y_s | y_t, y_0)'s: (1 - ᾱ_s)/(1 - ᾱ_t) · (1 - ᾱ_t/ᾱ_s)
    ab_t, ab_s = beta.alpha_bars[kept[1:]], beta.alpha_bars[kept[:-1]]
    torch.testing.assert_close(rb.posterior_sigmas[1:] ** 2, (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s), rtol=1e-12, atol=1e-300)
    rs = sigma.respaced(kept)
    assert torch.equal(rs.sigmas, sigma.sigmas[kept]) and torch.equal(rs.sigma_norms, sigma.sigma_norms[kept])


def test_respacing_every_step_returns_the_original_tables_exactly():
    beta, sigma = BetaSchedule.cosine(1000), SigmaSchedule.geometric(1000)
    every = torch.arange(1001)
    rb, rs = beta.respaced(every), sigma.respaced(every)
    for f in ("betas", "alphas", "alpha_bars", "posterior_sigmas"):
        assert torch.equal(getattr(rb, f), getattr(beta, f)), f
    assert torch.equal(rs.sigmas, sigma.sigmas)
    with pytest.raises(ValueError, match="ascend"):
        beta.respaced(torch.tensor([0, 5, 5]))
    with pytest.raises(ValueError, match="ascend"):
        sigma.respaced(torch.tensor([1, 5]))


def test_jump_step_lands_on_the_ddpm_posterior_mean_and_the_ve_bridge():
    """With the true ε and no noise, the jump t -> s gives the mean of q(y_s | y_t, y_0), and the coordinate jump
    moves by (σ_t² − σ_s²)·score with the bridge's noise scale."""
    diff = JointDiffusion(DiffusionConfig(num_steps=100))
    gen = torch.Generator().manual_seed(1)
    l0 = torch.randn(3, 3, 3, generator=gen)
    state0 = CrystalState(torch.randn(4, 100, generator=gen), torch.rand(4, 3, generator=gen), l0,
                          torch.tensor([0, 1, 1, 2]), torch.tensor([1, 2, 1]))
    noise = StateNoise.randn_like(state0, gen)
    t, s = 60, 45
    noisy = diff.q_sample(state0, t, noise)
    pred = DenoiserOutput(torch.zeros(4, 3), noise.lattice, noise.atom_types)
    prev = diff.predictor_step(noisy, pred, t, StateNoise.zeros_like(noisy), t_prev=s)
    ab, ab_s = diff.betas64.alpha_bars[t], diff.betas64.alpha_bars[s]
    a_ts = ab / ab_s
    mean = (ab_s.sqrt() * (1 - a_ts) / (1 - ab)) * l0.double() + (a_ts.sqrt() * (1 - ab_s) / (1 - ab)) * noisy.lattice.double()
    torch.testing.assert_close(prev.lattice.double(), mean, rtol=1e-4, atol=1e-5)
    scales = diff.predictor_scales(t, 3, s)
    sig_t, sig_s = diff.sigmas[t], diff.sigmas[s]
    torch.testing.assert_close(scales.coord_step, (sig_t**2 - sig_s**2).expand(3))
    torch.testing.assert_close(scales.coord_std, torch.sqrt(sig_s**2 * (sig_t**2 - sig_s**2) / sig_t**2).expand(3))
    # a jump to 0 returns the clean data for the true ε, whatever the noise
    clean = diff.predictor_step(noisy, pred, t, StateNoise.randn_like(state0, gen), t_prev=0)
    torch.testing.assert_close(clean.lattice, l0, rtol=1e-3, atol=1e-3)
    for bad in (t, t + 1, -1):
        with pytest.raises(ValueError, match="t_prev"):
            diff.predictor_step(noisy, pred, t, StateNoise.zeros_like(noisy), t_prev=bad)


def one_step_reference(model, diffusion: JointDiffusion, start: SamplingStart, cond, guidance: Guidance,
                       gen: torch.Generator, step_lr: float) -> CrystalState:
    """DiffCSP's predictor–corrector loop written out from the one-step float32 tables (the sampler before
    fewer-step sampling existed): the full-grid sampler must reproduce it bit for bit."""
    d, state, b = diffusion, start.state, start.state.num_crystals
    atom = state.batch
    for step in range(start.t_start, 0, -1):
        t = torch.full((b,), step, dtype=torch.long)
        pred = guidance.predict(model, state, t, cond)
        z = torch.randn(state.frac_coords.shape, generator=gen)
        if step == 1:
            z = torch.zeros_like(z)
        lr = step_lr * (d.sigmas[t] / d.sigmas[1]) ** 2
        score = pred.coord_score * d.sigma_norms[t][atom].sqrt().unsqueeze(-1)
        x = state.frac_coords + lr[atom].unsqueeze(-1) * score + torch.sqrt(2 * lr[atom].unsqueeze(-1)) * z
        state = state.replace(frac_coords=torch.remainder(x, 1.0))
        pred = guidance.predict(model, state, t, cond)
        noise = StateNoise.randn_like(state, gen)
        s_t, s_p = d.sigmas[t], d.sigmas[t - 1]
        dstep = s_t**2 - s_p**2
        std = torch.sqrt(s_p**2 * dstep / s_t**2)
        score = pred.coord_score * d.sigma_norms[t][atom].sqrt().unsqueeze(-1)
        x = state.frac_coords + dstep[atom].unsqueeze(-1) * score
        x = torch.remainder(x + std[atom].unsqueeze(-1) * noise.frac_coords, 1.0)
        c0 = 1.0 / d.alphas[t].sqrt()
        c1 = d.betas[t] / (1 - d.alpha_bars[t]).sqrt()
        post = d.posterior_sigmas[t]
        lat = c0.view(-1, 1, 1) * (state.lattice - c1.view(-1, 1, 1) * pred.lattice_eps) + post.view(-1, 1, 1) * noise.lattice
        types = c0[atom].unsqueeze(-1) * (state.atom_types - c1[atom].unsqueeze(-1) * pred.type_eps)
        types = types + post[atom].unsqueeze(-1) * noise.atom_types
        state = state.replace(frac_coords=x, lattice=lat, atom_types=types)
    return state


@pytest.mark.parametrize("t_start", [30, 12])
def test_full_grid_sampler_reproduces_the_one_step_sampler_bit_for_bit(t_start):
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny()).eval()
    base = JointDiffusion(DiffusionConfig(num_steps=30))
    num_atoms = torch.tensor([3, 5, 2])
    finals = []
    for diffusion, reference in ((base, True), (base, False), (base.with_sampling_steps(30), False)):
        gen = torch.Generator().manual_seed(3)
        cond = site_condition(torch.randn(400, generator=gen), num_atoms, (0,))
        start = prior_start(diffusion, num_atoms, gen)
        if t_start < 30:
            start = template_start(diffusion, start.state, t_start, gen)
        if reference:
            finals.append(one_step_reference(model, diffusion, start, cond, ClassifierFreeGuidance(1.0), gen, 1e-4))
        else:
            finals.append(PredictorCorrectorSampler(model, diffusion, step_lr=1e-4).run(start, cond, ClassifierFreeGuidance(1.0), generator=gen).state)
    for f in ("atom_types", "frac_coords", "lattice"):
        assert torch.equal(getattr(finals[0], f), getattr(finals[1], f)), f
        assert torch.equal(getattr(finals[0], f), getattr(finals[2], f)), f


@pytest.fixture(scope="module")
def trained():
    data = peak_world(192, seed=0, num_atoms=2)
    model, diffusion, losses = fit_denoiser(
        data, DenoiserConfig.tiny(num_classes=PEAK_NUM_CLASSES),
        DiffusionConfig(num_steps=200, num_classes=PEAK_NUM_CLASSES, beta_max=0.99), 150, batch_size=64,
    )
    assert losses[-1] < losses[0]
    return model, diffusion


@pytest.mark.parametrize("s,t_start", [(10, 200), (5, 200), (10, 60)])
def test_trained_tiny_model_at_few_steps_stays_finite_and_valid(trained, s, t_start):
    model, diffusion = trained
    fast = diffusion.with_sampling_steps(s)
    num_atoms = torch.full((16,), 2, dtype=torch.long)
    gen = torch.Generator().manual_seed(5)
    cond = site_condition(peak_dos(torch.tensor([3]))[0], num_atoms, (0,))
    start = prior_start(fast, num_atoms, gen)
    if t_start < diffusion.num_steps:  # template-guided: real crystals of the training world noised to t_start
        templates = fast.clean_state(Batch.from_data_list(peak_world(16, seed=9, num_atoms=2)))
        start = template_start(fast, templates, t_start, gen)
    out = PredictorCorrectorSampler(model, fast, step_lr=1e-4).run(start, cond, ClassifierFreeGuidance(1.0), generator=gen,
                                                                      record_trajectory=True)
    visited = fast.reverse_steps(t_start)
    assert out.trajectory.steps == visited and len(visited) - 1 <= s
    assert out.model_calls == 2 * (len(visited) - 1)  # corrector + predictor, each one batched CFG call
    for f in ("atom_types", "frac_coords", "lattice"):
        assert bool(torch.isfinite(getattr(out.state, f)).all()), f
    crystals = output_to_crystals(SamplingOutput(out.state))
    assert all(c is not None for c in crystals)
    assert all(abs(float(torch.det(torch.as_tensor(c.lattice)))) > 1.0 for c in crystals)
    assert int((out.atomic_numbers - 1).max()) < PEAK_NUM_CLASSES


def test_sampling_steps_are_validated_where_they_are_given():
    with pytest.raises(ValueError, match="sampling steps"):
        JointDiffusion(DiffusionConfig(num_steps=50), sampling_steps=51)
    with pytest.raises(ValueError, match="sampling steps"):
        JointDiffusion(DiffusionConfig(num_steps=50), sampling_steps=0)
    with pytest.raises(InvalidRecordError, match="--sampling-steps"):
        EvaluationSettings(sampling_steps=1001).validate(1000)
    EvaluationSettings(sampling_steps=100).validate(1000)
    from dosmatgen.sampling.request import SamplingRequest, prepare

    with pytest.raises(InvalidRecordError, match="--sampling-steps"):
        prepare(SamplingRequest(checkpoint="bundled:dosmatgen-small", sampling_steps=0))


def test_the_screen_config_selects_the_sampling_steps():
    from pathlib import Path

    from dosmatgen.screen.config import load_screen_config
    from dosmatgen.screen.library_stages import load_diffusion_sampler

    local = Path(__file__).resolve().parents[1] / "configs" / "screen" / "local.yaml"
    cfg = load_screen_config(local, {"sample.options.sampling_steps": 50})
    assert cfg.sample.loader.endswith(":load_diffusion_sampler") and cfg.sample.options["sampling_steps"] == 50
    sampler = load_diffusion_sampler(**cfg.sample.options)
    assert sampler.base.diffusion.sampling_steps == 50
    assert sampler.base.diffusion.reverse_steps(1000)[:3] == [1000, 980, 960]
    assert load_screen_config(local).sample.options["sampling_steps"] == 100  # the measured default (docs/sampling-steps.md)
