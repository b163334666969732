"""Wrapped normal density and score."""

from __future__ import annotations

import math

import pytest
import torch

from dosmatgen.diffusion.wrapped_normal import (
    log_wrapped_normal,
    score_mean_square,
    wrapped_normal_density,
    wrapped_normal_score,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("sigma", [0.005, 0.05, 0.2, 0.5, 1.0])
def test_score_is_derivative_of_log_density(sigma):
    x = torch.linspace(-0.49, 0.49, 41, dtype=torch.float64)
    h = 1e-6 * min(sigma, 0.1)
    numeric = (log_wrapped_normal(x + h, sigma) - log_wrapped_normal(x - h, sigma)) / (2 * h)
    analytic = wrapped_normal_score(x, sigma)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-5 * (1 / sigma**2))


def test_density_is_normalised_and_periodic():
    u = torch.arange(20000, dtype=torch.float64) / 20000
    for sigma in (0.01, 0.3, 0.8):
        assert wrapped_normal_density(u, sigma).mean().item() == pytest.approx(1.0, rel=1e-9)
    x = torch.linspace(-2, 2, 17, dtype=torch.float64)
    torch.testing.assert_close(wrapped_normal_score(x + 1.0, 0.3), wrapped_normal_score(x, 0.3))
    # narrow σ: the density is the unwrapped normal near 0
    assert wrapped_normal_density(torch.tensor(0.0, dtype=torch.float64), 0.01).item() == pytest.approx(
        1 / (0.01 * math.sqrt(2 * math.pi)), rel=1e-12
    )
    assert wrapped_normal_score(torch.tensor(0.02, dtype=torch.float64), 0.01).item() == pytest.approx(-200.0, rel=1e-9)


def test_score_mean_square_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    sigmas = torch.tensor([0.01, 0.1, 0.3, 0.5], dtype=torch.float64)
    quad = score_mean_square(sigmas)
    for s, q in zip(sigmas, quad):
        x = s * torch.randn(100_000, generator=gen, dtype=torch.float64)
        mc = (wrapped_normal_score(x, s) ** 2).mean().item()
        assert q.item() == pytest.approx(mc, rel=0.02)
    assert quad[0].item() == pytest.approx(1 / 0.01**2, rel=1e-9)
