"""Small regressor r_phi(p E, K) -> (DOS(E_F), N(E_F)) for classifier guidance (paper Eq. 1 and Algorithm 2).

Input: the expected token embedding p @ [E | v] per position (B, 256, token_dim + 1), where p is the categorical
distribution over value/[BG] tokens, E the score network's own embedding matrix and v the token value channel
(see :mod:`expected_embedding`), plus log K. Each position is projected to a few
channels, the sequence is flattened and an MLP predicts the properties in standardised units
((y - mean) / std, the statistics of the training split stored in the config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from dosmatgen.dos_sampler.tokens import SEQ_LEN

#: Properties the regressor predicts, in order (names of dosmatgen.dos.properties.derived_properties_batch).
REGRESSED = ("dos_fermi", "n_fermi")


@dataclass(frozen=True)
class RegressorConfig:
    token_dim: int
    channels: int = 4
    hidden: int = 128
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0])

    def to_dict(self) -> dict:
        return asdict(self)


class PropertyRegressor(nn.Module):
    def __init__(self, cfg: RegressorConfig):
        super().__init__()
        self.cfg = cfg
        self.project = nn.Linear(cfg.token_dim + 1, cfg.channels)
        self.mlp = nn.Sequential(
            nn.Linear(SEQ_LEN * cfg.channels + 1, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, len(REGRESSED)),
        )
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32))

    def forward(self, expected_embedding: torch.Tensor, log_k: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (B, 2)."""
        z = self.project(expected_embedding).flatten(1)
        return self.mlp(torch.cat([z, log_k[:, None]], dim=1))

    def predict(self, expected_embedding: torch.Tensor, log_k: torch.Tensor) -> torch.Tensor:
        """Predictions in physical units (B, 2)."""
        return self(expected_embedding, log_k) * self.std + self.mean
