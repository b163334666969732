"""Window conditioning and classifier guidance on a tiny, quickly trained model of a synthetic "peak world"
(site DOS = one Gaussian peak at an element-specific energy, see ``sampling_fixture_helpers``).

The diffusion uses T = 100 and β_max = 0.99: with the default β_max = 0.9999 the first reverse lattice step
multiplies the ε error by 1/sqrt(α_T) = 100, which blows up the lattices of a model trained for seconds (the
regressor is then evaluated far outside its training distribution).
"""

from __future__ import annotations

import pytest
import torch

from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.sampling import (
    ClassifierFreeGuidance, ClassifierGuidance, NoGuidance, PredictorCorrectorSampler, prior_start, site_condition,
    window_mask,
)
from dosmatgen.sampling.guidance import regressor_distance, regressor_gradients
from dosmatgen.training.condition_dropout import ConditionDropoutConfig
from sampling_fixture_helpers import (
    PEAK_CENTRES, PEAK_ELEMENTS, PEAK_NUM_CLASSES, fit_denoiser, fit_regressor, peak_dos, peak_world,
)

pytestmark = pytest.mark.slow  # ~1-2 min on 2 idle cores (two tiny models trained from scratch)

N = 32


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    data = peak_world(512, seed=0)
    dropout = ConditionDropoutConfig(p_uncond=0.1, p_partial_sites=0.3, p_window=0.5, min_width_ev=2.0, max_width_ev=10.0)
    model, diffusion, losses = fit_denoiser(
        data, DenoiserConfig.tiny(num_classes=PEAK_NUM_CLASSES),
        DiffusionConfig(num_steps=100, num_classes=PEAK_NUM_CLASSES, beta_max=0.99), 400, batch_size=64, dropout=dropout,
    )
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20])
    regressor, reg_losses = fit_regressor(data, RegressorConfig.tiny(num_classes=PEAK_NUM_CLASSES, loss="mse"), diffusion, 400, batch_size=64)
    assert sum(reg_losses[-20:]) < 0.8 * sum(reg_losses[:20])
    k = torch.arange(N) % len(PEAK_ELEMENTS)
    return dict(model=model, diffusion=diffusion, regressor=regressor, k=k, target_z=torch.tensor(PEAK_ELEMENTS)[k],
                num_atoms=torch.full((N,), 2))


def test_window_conditioning_lowers_the_in_window_error(world):
    """Condition site 0 on target y inside window W (W = y's peak ± 1.5 eV) versus on y inside a window outside W:
    the in-window error of the generated site-0 DOS is lower with W."""
    y = peak_dos(world["target_z"])
    centres = torch.tensor(PEAK_CENTRES)
    inside = torch.stack([window_mask(SITE_GRID, float(c) - 1.5, float(c) + 1.5) for c in centres[world["k"]]])
    outside = torch.stack([window_mask(SITE_GRID, float(c) - 1.5, float(c) + 1.5) for c in centres[(world["k"] + 4) % 8]])
    assert float((inside * outside).sum()) == 0.0

    def in_window_error(windows):
        cond = site_condition(y, world["num_atoms"], (0,)).with_window(torch.repeat_interleave(windows, 2, dim=0))
        gen = torch.Generator().manual_seed(0)
        out = PredictorCorrectorSampler(world["model"], world["diffusion"], step_lr=0.0).run(
            prior_start(world["diffusion"], world["num_atoms"], gen), cond, ClassifierFreeGuidance(1.0), generator=gen)
        generated = peak_dos(out.atomic_numbers[::2])  # site 0 of every crystal
        return ((generated - y).abs() * inside).sum(-1) / inside.sum(-1)

    err_w, err_out = in_window_error(inside), in_window_error(outside)
    assert err_w.mean() < 0.5 * err_out.mean(), (err_w.mean(), err_out.mean())


def test_regressor_gradient_step_lowers_the_distance(world):
    diffusion, regressor = world["diffusion"], world["regressor"]
    y = peak_dos(world["target_z"])
    cond = site_condition(y, world["num_atoms"], (0,))
    gen = torch.Generator().manual_seed(5)
    state = prior_start(diffusion, world["num_atoms"], gen).state
    t = torch.full((N,), 10)
    grads = regressor_gradients(regressor, state, t, cond)
    moved = state.replace(atom_types=state.atom_types - 1e-2 * grads.atom_types)
    with torch.no_grad():
        assert regressor_distance(regressor, moved, t, cond).sum() < regressor_distance(regressor, state, t, cond).sum()
    assert float(grads.atom_types[1::2].abs().sum()) < float(grads.atom_types[0::2].abs().sum())  # site 1 is unconditioned


def test_classifier_guidance_beats_unguided_for_most_targets(world):
    """Same seed, same model: guided samples have a lower regressor ‖ŷ − y‖ (site 0, clean types, t = 1) than the
    unguided ones for at least 80 % of 32 targets."""
    diffusion, regressor = world["diffusion"], world["regressor"]
    y = peak_dos(world["target_z"])
    cond = site_condition(y, world["num_atoms"], (0,))

    def sample(guidance, c):
        gen = torch.Generator().manual_seed(0)
        out = PredictorCorrectorSampler(world["model"], diffusion, step_lr=1e-5).run(
            prior_start(diffusion, world["num_atoms"], gen), c, guidance, generator=gen)
        clean = out.state.replace(atom_types=torch.nn.functional.one_hot(out.atomic_numbers - 1, PEAK_NUM_CLASSES).float())
        with torch.no_grad():
            return regressor_distance(regressor, clean, torch.ones(N, dtype=torch.long), cond), out.atomic_numbers[::2]

    d_unguided, z_unguided = sample(NoGuidance(), None)
    d_guided, z_guided = sample(ClassifierGuidance(regressor, strength=100.0), cond)
    assert float((d_guided < d_unguided).float().mean()) >= 0.8, (d_guided, d_unguided)
    assert (z_guided == world["target_z"]).float().mean() > (z_unguided == world["target_z"]).float().mean()
