"""RADD lambda-denoising loss (Ou et al. 2024; paper Appendix C.1).

For clean tokens x0 (B, L): draw a masking level lambda per sample (stratified over the batch), mask each token
independently with probability lambda, and score the masked positions:

    loss = E_lambda [ (1 / lambda) * (1 / L) * sum_{i masked} -log q_theta(x0_i | x_masked, K) ].

This is the absorbing-diffusion ELBO written in lambda (the probability that a token is masked), with the
time-independent network of RADD. ``prior_prob``: the fraction of samples whose [BG] tokens are never masked,
so the network also learns the band-gap prior of generation (gap bins fixed, everything else masked).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dosmatgen.dos_sampler.network import DosScoreNetwork
from dosmatgen.dos_sampler.tokens import BG_TOKEN, MASK_TOKEN

#: Smallest masking level drawn (the 1/lambda weight is bounded by 1/LAMBDA_MIN).
LAMBDA_MIN = 1e-3


def sample_lambda(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Stratified lambda in [LAMBDA_MIN, 1]: (u + i) / B for i = 0..B-1 with one shared uniform u."""
    u = torch.rand((), generator=generator)
    lam = (u + torch.arange(batch, dtype=torch.float32)) / batch
    return lam.clamp(min=LAMBDA_MIN, max=1.0)


def mask_tokens(
    tokens: torch.Tensor, lam: torch.Tensor, prior_prob: float = 0.0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noised tokens, mask) for clean ``tokens`` (B, L) at masking levels ``lam`` (B,)."""
    mask = torch.rand(tokens.shape, generator=generator) < lam[:, None]
    if prior_prob > 0:
        keep_bg = torch.rand(tokens.shape[0], generator=generator) < prior_prob
        mask = mask & ~(keep_bg[:, None] & (tokens == BG_TOKEN))
    return torch.where(mask, torch.full_like(tokens, MASK_TOKEN), tokens), mask


def lambda_denoising_loss(
    model: DosScoreNetwork,
    tokens: torch.Tensor,
    log_k: torch.Tensor,
    *,
    prior_prob: float = 0.0,
    generator: torch.Generator | None = None,
    lam: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of the lambda-weighted masked cross entropy per token (nats per token)."""
    b, length = tokens.shape
    lam = sample_lambda(b, generator) if lam is None else lam
    noised, mask = mask_tokens(tokens, lam, prior_prob, generator)
    logits = model(noised, log_k, lam)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1), reduction="none").view(b, length)
    per_sample = (ce * mask).sum(dim=1) / (lam * length)
    return per_sample.mean()
