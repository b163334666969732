"""Configuration of the CSPNet denoiser."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

CondMode = Literal["site", "total", "none"]
COND_MODES: tuple[str, ...] = ("site", "total", "none")


@dataclass(frozen=True)
class DenoiserConfig:
    """Width, depth and conditioning of :class:`dosmatgen.model.cspnet.CSPNetDenoiser`.

    The defaults are the paper's configuration (hidden 512, 6 layers, 128 frequencies, time dim 256,
    100 element classes). :meth:`small` is a configuration for CPU work, :meth:`tiny` one for tests.

    * ``cond_mode``: ``"site"`` (per-atom DOS, ``site_dos_dim`` bins), ``"total"`` (crystal DOS,
      ``total_dos_dim`` bins, broadcast to the atoms) or ``"none"`` (no condition input at all).
    * ``window_channel``: feed ``[dos * window, window]`` (2·D inputs) so that the model can be told
      which energy bins are known. Without it the projection sees only ``dos`` (D inputs).
    """

    hidden_dim: int = 512
    num_layers: int = 6
    num_freqs: int = 128
    time_dim: int = 256
    num_classes: int = 100
    cond_mode: CondMode = "site"
    site_dos_dim: int = 400
    total_dos_dim: int = 256
    window_channel: bool = True
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if self.cond_mode not in COND_MODES:
            raise ValueError(f"cond_mode must be one of {COND_MODES}, got {self.cond_mode!r}")
        for name in ("hidden_dim", "num_layers", "num_freqs", "num_classes", "site_dos_dim", "total_dos_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be an even number >= 2, got {self.time_dim}")

    @property
    def cond_dim(self) -> int:
        """Number of DOS bins of the condition (0 for ``cond_mode='none'``)."""
        return {"site": self.site_dos_dim, "total": self.total_dos_dim, "none": 0}[self.cond_mode]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DenoiserConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown denoiser config keys: {sorted(unknown)}")
        return cls(**dict(d))

    @classmethod
    def paper(cls, **overrides: Any) -> "DenoiserConfig":
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides: Any) -> "DenoiserConfig":
        base = dict(hidden_dim=128, num_layers=4, num_freqs=32, time_dim=64)
        return cls(**{**base, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "DenoiserConfig":
        base = dict(hidden_dim=32, num_layers=2, num_freqs=8, time_dim=16)
        return cls(**{**base, **overrides})
