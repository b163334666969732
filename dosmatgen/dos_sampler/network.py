"""Score network q_theta(x_i | x_unmasked, K) of the DOSSampler: a bidirectional transformer with AdaLN.

Each bin's token is embedded (``token_dim``), ``patch`` neighbouring bins are concatenated into one transformer
position (256 / patch positions, linear to ``d_model``), and at the end every position is split back into
``patch`` per-bin features (``token_dim``) that a shared linear head maps to logits over value/[BG] tokens.
Patching keeps CPU training affordable; masking and prediction stay per bin.

Every block is a pre-norm transformer block whose LayerNorms are modulated (shift, scale, gate) by a conditioning
vector, DiT's "adaLN-Zero" (gates start at zero, so each block starts as the identity). The conditioning vector
embeds log K and, only when ``time_conditioned`` is set, the masking level lambda in [0, 1]. RADD's
reparameterisation makes the exact score network time-independent, so the default is ``time_conditioned=False``
(the ablation in docs/dos-sampler.md compares both).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dosmatgen.dos_sampler.tokens import N_OUTPUT_TOKENS, SEQ_LEN, VOCAB_SIZE


@dataclass(frozen=True)
class NetworkConfig:
    d_model: int = 64
    token_dim: int = 32
    patch: int = 4
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    time_conditioned: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if SEQ_LEN % self.patch:
            raise ValueError(f"patch {self.patch} does not divide the {SEQ_LEN} bins")

    def to_dict(self) -> dict:
        return asdict(self)


def _fourier(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of a scalar per sample: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * (-math.log(1000.0) / max(half - 1, 1)))
    ang = x.float()[:, None] * freqs[None] * 2 * math.pi
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


class AdaLNBlock(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(approximate="tanh"), nn.Linear(cfg.mlp_ratio * d, d))
        self.modulation = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.dropout = cfg.dropout

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = self.norm1(h) * (1 + scale1) + shift1
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        h = h + gate1 * self.proj(att.transpose(1, 2).reshape(b, n, d))
        x = self.norm2(h) * (1 + scale2) + shift2
        return h + gate2 * self.mlp(x)


class DosScoreNetwork(nn.Module):
    """tokens (B, 256) in 0..1026, log K (B,), optional lambda (B,) -> logits (B, 256, 1026) over value/[BG]."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.token_embedding = nn.Embedding(VOCAB_SIZE, cfg.token_dim)
        self.patch_in = nn.Linear(cfg.patch * cfg.token_dim, d)
        self.position_embedding = nn.Parameter(torch.randn(SEQ_LEN // cfg.patch, d) * 0.02)
        self.cond_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(AdaLNBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_modulation = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.final_modulation.weight)
        nn.init.zeros_(self.final_modulation.bias)
        self.patch_out = nn.Linear(d, cfg.patch * cfg.token_dim)
        self.head = nn.Linear(cfg.token_dim, N_OUTPUT_TOKENS)

    @property
    def output_embedding(self) -> torch.Tensor:
        """E (1026, token_dim): the embeddings of the value and [BG] tokens (classifier guidance uses p @ E)."""
        return self.token_embedding.weight[:N_OUTPUT_TOKENS]

    def condition(self, log_k: torch.Tensor, lam: torch.Tensor | None) -> torch.Tensor:
        d = self.cfg.d_model
        if self.cfg.time_conditioned:
            if lam is None:
                raise ValueError("this DOSSampler network is time-conditioned: pass the masking level lambda")
            feats = torch.cat([_fourier(log_k, d // 2), _fourier(lam, d // 2)], dim=-1)
        else:
            feats = _fourier(log_k, d)
        return self.cond_mlp(feats)

    def forward(self, tokens: torch.Tensor, log_k: torch.Tensor, lam: torch.Tensor | None = None) -> torch.Tensor:
        c = self.condition(log_k, lam)
        b, n = tokens.shape
        p = self.cfg.patch
        h = self.patch_in(self.token_embedding(tokens).reshape(b, n // p, -1)) + self.position_embedding[None]
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_modulation(c)[:, None].chunk(2, dim=-1)
        per_bin = self.patch_out(self.final_norm(h) * (1 + scale) + shift).reshape(b, n, self.cfg.token_dim)
        return self.head(per_bin)
