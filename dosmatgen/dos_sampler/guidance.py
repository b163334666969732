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

from dosmatgen.dos.properties import TE_MIN_COSINE
from dosmatgen.dos_sampler.expected_embedding import expected_embedding, token_probabilities, token_values
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

    def __call__(self, network: DosScoreNetwork, tokens: torch.Tensor, logits: torch.Tensor, log_k: torch.Tensor) -> torch.Tensor:
        return guide_logits(self, network, tokens, logits, log_k)


@dataclass
class ShapeGuidance:
    """Guidance toward the SHAPE of a reference spectrum (our addition, for the thermoelectric target, whose third
    criterion is a cosine above 0.9 to a reference DOS; the paper has no guidance for it and relies on rejection):

        l' = l - gamma_eff * grad_l (1 - cos(p v, d_ref)),

    with p v the expected decoded DOS (in units of K, so the cosine does not depend on K) of the partially masked
    sequence. Residual-scaled like :class:`Guidance`: the gradient is divided by its largest entry per sample and
    multiplied by gamma * tanh((1 - cos) / (1 - 0.9)), so the push fades once the cosine passes about 0.9."""

    reference: torch.Tensor
    scale: float

    def __post_init__(self) -> None:
        ref = torch.as_tensor(self.reference, dtype=torch.float32).reshape(-1)
        if not torch.isfinite(ref).all() or float(ref.abs().sum()) == 0.0:
            raise DosmatgenError("shape guidance needs a finite, non-zero reference DOS")
        self.reference = ref

    def __call__(self, network: DosScoreNetwork, tokens: torch.Tensor, logits: torch.Tensor, log_k: torch.Tensor) -> torch.Tensor:
        if self.scale == 0:
            return logits
        with torch.enable_grad():
            ell = logits.detach().requires_grad_(True)
            dos = token_probabilities(tokens, ell) @ token_values()
            cos = torch.nn.functional.cosine_similarity(dos, self.reference[None].to(dos.dtype), dim=1, eps=1e-12)
            (grad,) = torch.autograd.grad((1.0 - cos).sum(), ell)
        return scaled_step(logits, grad, self.scale * torch.tanh((1.0 - cos.detach()).clamp(min=0) / (1.0 - TE_MIN_COSINE)))


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
    return scaled_step(logits, grad, guidance.scale * torch.tanh(residual.detach().norm(dim=1)))


def scaled_step(logits: torch.Tensor, grad: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """``logits - push * grad / max|grad|`` per sample: each step moves a logit by at most ``push`` (B,)."""
    size = grad.abs().flatten(1).amax(dim=1).clamp(min=1e-12)
    return logits - (push / size)[:, None, None] * grad
