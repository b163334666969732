"""Classifier guidance on logits (paper Eq. 1 / Algorithm 2 lines 4 and 14).

    l' = l - gamma_eff * grad_l sum_j (r_phi(p E, K)_j - y*_j)^2,

with p = softmax(l) at masked positions (one-hot elsewhere), E the score network's token embeddings and the
regressor's outputs in standardised units. "Residual-scaled gamma": the gradient is divided by its largest
absolute entry per sample and multiplied by gamma * tanh(|residual|), so each step moves the logits by at most
gamma and the push fades as the predicted property reaches the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dosmatgen.dos_sampler.expected_embedding import expected_embedding
from dosmatgen.dos_sampler.network import DosScoreNetwork
from dosmatgen.dos_sampler.property_regressor import REGRESSED, PropertyRegressor
from dosmatgen.errors import DosmatgenError


@dataclass
class Guidance:
    regressor: PropertyRegressor
    targets: dict[str, float]
    scale: float

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(REGRESSED)
        if unknown:
            raise DosmatgenError(f"guidance targets {sorted(unknown)} are not predicted by the regressor ({REGRESSED})")

    def target_vector(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised target (2,), which outputs are guided (2,) bool)."""
        reg = self.regressor
        y = torch.tensor([self.targets.get(name, 0.0) for name in REGRESSED], dtype=torch.float32)
        used = torch.tensor([name in self.targets for name in REGRESSED])
        return (y - reg.mean) / reg.std, used


def guide_logits(
    guidance: Guidance, network: DosScoreNetwork, tokens: torch.Tensor, logits: torch.Tensor, log_k: torch.Tensor
) -> torch.Tensor:
    """Guided logits l' for ``tokens`` (B, L) with raw ``logits`` (B, L, V)."""
    if guidance.scale == 0 or not guidance.targets:
        return logits
    y_star, used = guidance.target_vector()
    with torch.enable_grad():
        ell = logits.detach().requires_grad_(True)
        pred = guidance.regressor(expected_embedding(network, tokens, ell), log_k)
        residual = (pred - y_star) * used
        (grad,) = torch.autograd.grad((residual**2).sum(), ell)
    size = grad.abs().flatten(1).amax(dim=1).clamp(min=1e-12)
    step = guidance.scale * torch.tanh(residual.detach().norm(dim=1)) / size
    return logits - step[:, None, None] * grad
