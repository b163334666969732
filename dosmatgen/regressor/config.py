"""Configuration of the time-dependent DOS regressor used for classifier guidance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping


@dataclass(frozen=True)
class RegressorConfig:
    """Backbone sizes (CSPNet family, like the denoiser) and the output width.

    ``out_dim`` = 400 scaled site-DOS bins per atom (SITE_GRID); ``num_classes`` must equal the denoiser's.
    ``loss``: "l1" (as the forward surrogate) or "mse" on the scaled DOS.
    """

    hidden_dim: int = 512
    num_layers: int = 6
    num_freqs: int = 128
    time_dim: int = 256
    num_classes: int = 100
    out_dim: int = 400
    layer_norm: bool = True
    loss: str = "l1"

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "num_layers", "num_freqs", "num_classes", "out_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be an even number >= 2, got {self.time_dim}")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {self.loss!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RegressorConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown regressor config keys: {sorted(unknown)}")
        return cls(**dict(d))

    @classmethod
    def small(cls, **overrides: Any) -> "RegressorConfig":
        return cls(**{**dict(hidden_dim=128, num_layers=4, num_freqs=32, time_dim=64), **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "RegressorConfig":
        return cls(**{**dict(hidden_dim=32, num_layers=2, num_freqs=8, time_dim=16), **overrides})
