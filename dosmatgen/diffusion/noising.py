"""Forward (noising) processes of the three fields and the coordinate score target."""

from __future__ import annotations

import torch

from dosmatgen.diffusion.wrapped_normal import wrapped_normal_score


def atomic_numbers_to_one_hot(atomic_numbers: torch.Tensor, num_classes: int = 100) -> torch.Tensor:
    """(N,) long Z in 1..num_classes -> (N, num_classes) float one-hot with class = Z - 1."""
    z = atomic_numbers.long()
    if z.numel() and (int(z.min()) < 1 or int(z.max()) > num_classes):
        raise ValueError(f"atomic numbers must lie in 1..{num_classes}, got {z.min().item()}..{z.max().item()}")
    return torch.nn.functional.one_hot(z - 1, num_classes).float()


def one_hot_to_atomic_numbers(atom_types: torch.Tensor) -> torch.Tensor:
    """(N, C) continuous types -> (N,) long Z = argmax + 1."""
    return atom_types.argmax(dim=-1) + 1


def ddpm_noise(x0: torch.Tensor, alpha_bar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε; ``alpha_bar`` broadcasts against ``x0`` (e.g. (B,1,1) or (N,1))."""
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def wrapped_noise(x0: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = (x_0 + σ_t ε) mod 1; ``sigma`` (N, 1) broadcasts against x0 (N, 3)."""
    return torch.remainder(x0 + sigma * eps, 1.0)


def coordinate_score_target(sigma: torch.Tensor, eps: torch.Tensor, sigma_norm: torch.Tensor) -> torch.Tensor:
    """Training target of the coordinate head: ∇_{x_t} log q(x_t | x_0) / sqrt(σ_norm(t)).

    ``sigma``, ``sigma_norm`` (N, 1); ``eps`` (N, 3). The score of the wrapped normal is evaluated at the
    displacement σ ε (it is 1-periodic, so this equals the score at x_t - x_0).
    """
    return wrapped_normal_score(sigma * eps, sigma) / sigma_norm.sqrt()
