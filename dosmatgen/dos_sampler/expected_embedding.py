"""Expected token embedding p @ E of a partially masked sequence (input of the guidance regressor).

p is one-hot at positions that hold a value or [BG] token and softmax(logits) at [MASK] positions; E is the score
network's own embedding matrix of the value and [BG] tokens.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dosmatgen.dos_sampler.network import DosScoreNetwork
from dosmatgen.dos_sampler.tokens import MASK_TOKEN, N_OUTPUT_TOKENS


def token_probabilities(tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, L, 1026): softmax(logits) where ``tokens`` is [MASK], one-hot of the token elsewhere."""
    masked = tokens == MASK_TOKEN
    onehot = F.one_hot(tokens.clamp(max=N_OUTPUT_TOKENS - 1), N_OUTPUT_TOKENS).to(logits.dtype)
    return torch.where(masked[..., None], torch.softmax(logits, dim=-1), onehot)


def expected_embedding(model: DosScoreNetwork, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, L, d) = p @ E."""
    return token_probabilities(tokens, logits) @ model.output_embedding
