"""Expected token embedding p @ E of a partially masked sequence (input of the guidance regressor).

p is one-hot at positions that hold a value or [BG] token and softmax(logits) at [MASK] positions; E is the score
network's own embedding matrix of the value and [BG] tokens. The regressor sees p @ [E | v], the embedding
with one fixed extra channel v = token value / 1024 ([BG] = 0): on a small data set the learned embeddings of
rarely seen value tokens stay close to their random initialisation, and the value channel gives the regressor
(and so the guidance gradient) a smooth handle on the DOS level of every bin.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dosmatgen.dos_sampler.network import DosScoreNetwork
from dosmatgen.dos_sampler.tokens import MASK_TOKEN, N_OUTPUT_TOKENS, VALUE_MAX


def token_probabilities(tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, L, 1026): softmax(logits) where ``tokens`` is [MASK], one-hot of the token elsewhere."""
    masked = tokens == MASK_TOKEN
    onehot = F.one_hot(tokens.clamp(max=N_OUTPUT_TOKENS - 1), N_OUTPUT_TOKENS).to(logits.dtype)
    return torch.where(masked[..., None], torch.softmax(logits, dim=-1), onehot)


def token_values() -> torch.Tensor:
    """(1026,) decoded value of each output token in units of K: v / 1024, and 0 for [BG]."""
    v = torch.arange(N_OUTPUT_TOKENS, dtype=torch.float32) / VALUE_MAX
    v[-1] = 0.0
    return v


def expected_embedding(model: DosScoreNetwork, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, L, token_dim + 1) = p @ [E | v]."""
    p = token_probabilities(tokens, logits)
    return torch.cat([p @ model.output_embedding, (p @ token_values())[..., None]], dim=-1)
