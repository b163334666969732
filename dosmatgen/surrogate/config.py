"""Configuration of the forward DOS surrogate (model) and of its training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

Target = Literal["site", "total"]
TARGETS: tuple[str, ...] = ("site", "total")


def _from_mapping(cls, d: Mapping[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)} (known: {sorted(known)})")
    return cls(**dict(d))


@dataclass(frozen=True)
class SurrogateConfig:
    """The surrogate network: CSPNet message passing without time input, plus a DOS head.

    * ``target="site"``: per-atom head ``Linear(hidden -> site_dos_dim)`` (400 bins on SITE_GRID), as in DOSMatGen.
    * ``target="total"``: mean-pooled crystal features -> ``Linear(hidden -> total_dos_dim)`` (256 bins on
      TOTAL_GRID, per-atom total DOS), the DOS-intermediated paper's crystal-level features.

    Defaults are the paper's width/depth (512, 6 layers, 128 frequencies); :meth:`small` suits CPU training on
    the bundled data and :meth:`tiny` tests.
    """

    hidden_dim: int = 512
    num_layers: int = 6
    num_freqs: int = 128
    num_classes: int = 100
    target: Target = "site"
    site_dos_dim: int = 400
    total_dos_dim: int = 256
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        for name in ("hidden_dim", "num_layers", "num_freqs", "num_classes", "site_dos_dim", "total_dos_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def out_dim(self) -> int:
        return self.site_dos_dim if self.target == "site" else self.total_dos_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SurrogateConfig":
        return _from_mapping(cls, d)

    @classmethod
    def small(cls, **overrides: Any) -> "SurrogateConfig":
        return cls(**{**dict(hidden_dim=128, num_layers=4, num_freqs=32), **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> "SurrogateConfig":
        return cls(**{**dict(hidden_dim=32, num_layers=2, num_freqs=8), **overrides})


@dataclass(frozen=True)
class SurrogateTrainConfig:
    """Training run: Adam, L1 loss on scaled DOS, ReduceLROnPlateau on the validation MAE, best-val checkpoint.

    ``model`` holds :class:`SurrogateConfig` keys (``preset`` "small"/"tiny"/"paper" first, then overrides).
    ``max_minutes`` stops training early (after the current epoch) so CPU runs stay bounded. The test split is
    never read during training: model selection uses the validation split only.
    """

    preset: str = "small"
    model: Mapping[str, Any] | None = None
    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_factor: float = 0.6
    lr_patience: int = 15
    min_lr: float = 1e-5
    grad_clip: float | None = 1.0
    max_minutes: float | None = None
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None

    def model_config(self) -> SurrogateConfig:
        presets = {"small": SurrogateConfig.small, "tiny": SurrogateConfig.tiny, "paper": SurrogateConfig}
        if self.preset not in presets:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {sorted(presets)}")
        return presets[self.preset](**dict(self.model or {}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = dict(self.model or {})
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SurrogateTrainConfig":
        return _from_mapping(cls, d)
