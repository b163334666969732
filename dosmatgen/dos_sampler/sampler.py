"""Predictor-corrector masked-diffusion sampling (paper Algorithm 2).

The masking level falls linearly, lambda_i = 1 - i / N. At step i every masked position is revealed with
probability (lambda_i - lambda_{i+1}) / lambda_i (all remaining ones at the last step), drawn from
softmax(l'), the guided logits. Between predictor steps, K corrector rounds re-mask a fraction alpha of the
revealed positions (never the prior's fixed tokens) and re-sample them under the same guided logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dosmatgen.dos_sampler.guidance import Guidance, ShapeGuidance
from dosmatgen.dos_sampler.network import DosScoreNetwork
from dosmatgen.dos_sampler.tokens import BG_TOKEN, MASK_TOKEN
from dosmatgen.errors import DosmatgenError


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 32
    corrector_steps: int = 1
    remask_fraction: float = 0.1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.corrector_steps < 0 or not 0 <= self.remask_fraction < 1 or self.temperature <= 0:
            raise DosmatgenError(f"invalid sampling settings {self}")


def _logits(network, tokens, log_k, lam, forbid_bg, guidance, min_value=None):
    lam_t = torch.full((tokens.shape[0],), lam)
    logits = network(tokens, log_k, lam_t if network.cfg.time_conditioned else None)
    for g in (guidance if isinstance(guidance, (list, tuple)) else [] if guidance is None else [guidance]):
        logits = g(network, tokens, logits, log_k)
    vocab = torch.arange(logits.shape[-1])
    logits = logits.masked_fill(forbid_bg[..., None] & (vocab == BG_TOKEN), float("-inf"))
    if min_value is not None:  # value tokens below the floor (never [BG], whose index is above every value token)
        logits = logits.masked_fill(vocab < min_value[..., None], float("-inf"))
    return logits


def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).view(probs.shape[:-1])


@torch.no_grad()
def sample_tokens(
    network: DosScoreNetwork,
    log_k: torch.Tensor,
    prior: torch.Tensor,
    forbid_bg: torch.Tensor,
    *,
    guidance: Guidance | ShapeGuidance | list | None = None,
    config: SamplingConfig = SamplingConfig(),
    generator: torch.Generator,
    min_value: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tokens (B, 256) with no [MASK] left. ``prior`` (B, 256): fixed tokens or MASK_TOKEN; ``forbid_bg`` (B, 256);
    ``min_value`` (B, 256): the smallest value token allowed where a token is drawn (None: any)."""
    x = prior.clone()
    fixed = prior != MASK_TOKEN
    n = config.steps
    for i in range(n):
        lam, lam_next = 1.0 - i / n, 1.0 - (i + 1) / n
        masked = x == MASK_TOKEN
        if not masked.any():
            break
        logits = _logits(network, x, log_k, lam, forbid_bg, guidance, min_value)
        if i == n - 1:
            reveal = masked
        else:
            reveal = masked & (torch.rand(x.shape, generator=generator) < (lam - lam_next) / lam)
        x = torch.where(reveal, _draw(logits, config.temperature, generator), x)
        if i == n - 1:
            break
        for _ in range(config.corrector_steps):
            revealed = (x != MASK_TOKEN) & ~fixed
            counts = (revealed.sum(dim=1).float() * config.remask_fraction).floor().long()
            if int(counts.max()) == 0:
                break
            score = torch.rand(x.shape, generator=generator).masked_fill(~revealed, 2.0)
            rank = score.argsort(dim=1).argsort(dim=1)
            remask = revealed & (rank < counts[:, None])
            x = x.masked_fill(remask, MASK_TOKEN)
            logits = _logits(network, x, log_k, lam_next, forbid_bg, guidance, min_value)
            x = torch.where(remask, _draw(logits, config.temperature, generator), x)
    if (x == MASK_TOKEN).any():
        raise DosmatgenError("sampler left [MASK] tokens (internal error)")
    return x
