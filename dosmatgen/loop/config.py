"""The ``dosmatgen loop`` YAML config; every validation error names the file and the offending key.

Sections (configs/loop/*.yaml document every key)::

    loop:   {dir, rounds, seed, fine_tune, base_store}
    screen: {config, set}          # the screen each round runs, and dotted overrides for every round
    dft:    {top_k, explore, explore_pool}
    train:  {backend, ray: {...}, loop_weight, denoiser: {config, epochs, lr}, surrogate: {config, epochs, lr}}

Round ``r`` runs the screen with ``run.dir = <loop.dir>/round-<r>/screen``, ``run.seed = loop.seed + r``,
``rank.top_k = dft.top_k + dft.explore`` and the denoiser and surrogate of round ``r - 1`` (round 0: the ones the
screen config names). :func:`check_loop_config` validates everything that can be checked before work starts: the
config, the screen config with a round's overrides, the target (it must be readable), and the DFT budget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dosmatgen.errors import InvalidRecordError
from dosmatgen.screen.config import ScreenConfig, _Section, load_screen_config

TRAIN_BACKENDS = ("inline", "ray")
SAMPLER_LOADER = "dosmatgen.screen.library_stages:load_diffusion_sampler"
SCORER_LOADER = "dosmatgen.screen.library_stages:load_surrogate_scorer"


@dataclass(frozen=True)
class FineTuneConfig:
    """One model's fine-tuning per round: its training config file, epochs added per round and learning rate."""

    config: Path
    epochs: int
    lr: float | None = None


@dataclass(frozen=True)
class LoopConfig:
    path: Path
    dir: Path
    rounds: int
    seed: int
    fine_tune: bool
    base_store: str
    screen_config: Path
    screen_set: dict[str, Any]
    top_k: int
    explore: int
    explore_pool: float
    train_backend: str
    ray: dict[str, Any]
    loop_weight: int
    denoiser: FineTuneConfig
    surrogate: FineTuneConfig
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def dft_budget(self) -> int:
        """DFT calculations per round: the top K plus the exploration picks."""
        return self.top_k + self.explore

    def round_dir(self, r: int) -> Path:
        return self.dir / f"round-{r:02d}"

    def screen_overrides(self, r: int, denoiser: str, surrogate: str) -> dict[str, Any]:
        """Dotted overrides of the screen config for round ``r`` with the given model checkpoints."""
        return {**self.screen_set,
                "run.dir": str(self.round_dir(r) / "screen"),
                "run.seed": self.seed + r,
                "rank.top_k": self.dft_budget,
                "sample.options.checkpoint": str(denoiser),
                "rank.options.checkpoint": str(surrogate)}


def _positive(v: Any) -> str | None:
    return None if v >= 1 else "must be >= 1"


def _fine_tune(sec: _Section, base: Path) -> FineTuneConfig:
    cfg = sec.get("config", str)
    path = Path(os.path.expanduser(cfg))
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise sec.error("config", f"training config {path} not found")
    out = FineTuneConfig(path, sec.get("epochs", int, check=_positive),
                         sec.get("lr", float, None, check=lambda v: None if v > 0 else "must be > 0"))
    sec.finish()
    return out


def load_loop_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """Read and validate a loop config (``overrides``: dotted keys, e.g. ``{"loop.rounds": 2}``)."""
    path = Path(path)
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidRecordError("config file not found", file=file) from None
    except yaml.YAMLError as exc:
        raise InvalidRecordError(f"not valid YAML: {exc}", file=file) from None
    for dotted, value in (overrides or {}).items():
        node = raw if isinstance(raw, dict) else {}
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    base = path.resolve().parent
    top = _Section(raw, "", file)

    loop = top.section("loop")
    run_dir = Path(os.path.expandvars(os.path.expanduser(loop.get("dir", str)))).absolute()
    rounds = loop.get("rounds", int, check=_positive)
    seed = loop.get("seed", int, 0, check=lambda v: None if v >= 0 else "must be >= 0")
    fine_tune = loop.get("fine_tune", bool, True)
    base_store = loop.get("base_store", str, "bundled")
    if base_store != "bundled":
        p = Path(os.path.expanduser(base_store))
        base_store = str(p if p.is_absolute() else base / p)
        if not Path(base_store).exists():
            raise loop.error("base_store", f"dataset store {base_store} not found")
    loop.finish()

    screen = top.section("screen")
    screen_path = Path(os.path.expanduser(screen.get("config", str)))
    screen_path = screen_path if screen_path.is_absolute() else base / screen_path
    if not screen_path.is_file():
        raise screen.error("config", f"screen config {screen_path} not found")
    screen_set = dict(screen.get("set", dict, {}) or {})
    screen.finish()

    dft = top.section("dft")
    top_k = dft.get("top_k", int, check=lambda v: None if v >= 0 else "must be >= 0")
    explore = dft.get("explore", int, 0, check=lambda v: None if v >= 0 else "must be >= 0")
    pool = dft.get("explore_pool", float, 0.5, check=lambda v: None if 0 < v <= 1 else "must lie in (0, 1]")
    if top_k + explore < 1:
        raise dft.error("top_k", f"the DFT budget per round (top_k + explore = {top_k} + {explore}) is 0: "
                                 "a loop needs at least one DFT calculation per round")
    dft.finish()

    train = top.section("train")
    backend = train.get("backend", str, "inline", check=lambda v: None if v in TRAIN_BACKENDS else f"must be one of {TRAIN_BACKENDS}")
    ray = dict(train.get("ray", dict, {}) or {})
    unknown = sorted(set(ray) - {"workers", "gpu", "address", "storage", "max_failures"})
    if unknown:
        raise train.error("ray", f"unknown key {unknown[0]!r} (known: address, gpu, max_failures, storage, workers)")
    loop_weight = train.get("loop_weight", int, 1, check=_positive)
    denoiser = _fine_tune(train.section("denoiser"), base)
    surrogate = _fine_tune(train.section("surrogate"), base)
    train.finish()
    top.finish()
    return LoopConfig(path, run_dir, rounds, seed, fine_tune, base_store, screen_path, screen_set, top_k, explore,
                      pool, backend, ray, loop_weight, denoiser, surrogate, raw=raw)


def round_screen_config(cfg: LoopConfig, r: int, denoiser: str, surrogate: str) -> ScreenConfig:
    return load_screen_config(cfg.screen_config, cfg.screen_overrides(r, denoiser, surrogate))


def initial_checkpoints(cfg: LoopConfig) -> tuple[str, str]:
    """(denoiser, surrogate) checkpoints of round 0: the ones the screen config (with ``screen.set``) names."""
    sc = load_screen_config(cfg.screen_config, cfg.screen_set)
    return str(sc.sample.options.get("checkpoint", "")), str(sc.rank.options.get("checkpoint", ""))


def check_loop_config(config: str | os.PathLike, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """Everything that can fail before a loop starts: the loop config, the screen config as round 0 will run it
    (its loaders and backends), one conditioned target whose DOS file is readable, and the model loaders the
    loop fine-tunes."""
    from dosmatgen.screen.driver import check_screen
    from dosmatgen.screen.targets import target_plans

    cfg = load_loop_config(config, overrides)
    denoiser, surrogate = initial_checkpoints(cfg)
    sc = check_screen(cfg.screen_config, cfg.screen_overrides(0, denoiser, surrogate))
    where = f"{cfg.screen_config}"
    if len(sc.targets) != 1 or sc.targets[0].unconditioned:
        raise InvalidRecordError("targets: a loop optimises one conditioned target (give exactly one, with 'target')",
                                 file=where)
    if sc.sample.loader != SAMPLER_LOADER or not denoiser:
        raise InvalidRecordError(f"sample: a loop fine-tunes the diffusion model: loader must be {SAMPLER_LOADER} "
                                 "with options.checkpoint", file=where)
    if sc.rank.loader != SCORER_LOADER or not surrogate:
        raise InvalidRecordError(f"rank: a loop fine-tunes the DOS surrogate: loader must be {SCORER_LOADER} "
                                 "with options.checkpoint", file=where)
    try:
        target_plans(sc)  # reads the target DOS
    except InvalidRecordError as exc:
        raise exc.located(file=exc.file or where) from None
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidRecordError(f"targets[0].target: cannot read the target ({type(exc).__name__}: {exc})", file=where) from None
    return cfg
