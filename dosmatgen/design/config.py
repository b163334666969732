"""The ``dosmatgen design`` YAML config (configs/design/default.yaml documents every key) and ``--set`` overrides."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dosmatgen.errors import InvalidRecordError

SECTIONS = ("run", "source", "generator", "relax", "rank", "dft")


def default_config_path() -> Path:
    """The default config ships inside the package (configs/design/default.yaml in a clone links to it), so an
    installed dosmatgen finds it too."""
    return Path(__file__).resolve().parents[1] / "resources" / "configs" / "design-default.yaml"


@dataclass(frozen=True)
class DesignConfig:
    """The parsed config: one dict per section (keys as in configs/design/default.yaml)."""

    path: str
    run: dict[str, Any]
    source: dict[str, Any]
    generator: dict[str, Any]
    relax: dict[str, Any]
    rank: dict[str, Any]
    dft: dict[str, Any]


def _set(data: dict, dotted: str, value: Any, file: str) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            raise InvalidRecordError(f"--set {dotted}: {k!r} is not a section of the design config", file=file)
        node = node[k]
    node[keys[-1]] = value


def load_design_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> DesignConfig:
    """Read the config (default: configs/design/default.yaml) and apply ``overrides`` {"a.b": value}."""
    p = Path(path) if path else default_config_path()
    if not p.is_file():
        raise InvalidRecordError("design config not found", file=str(p))
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise InvalidRecordError(f"not valid YAML: {exc}", file=str(p)) from None
    if not isinstance(data, dict):
        raise InvalidRecordError("a design config is a mapping with sections " + ", ".join(SECTIONS), file=str(p))
    data = copy.deepcopy(data)
    for key, value in (overrides or {}).items():
        _set(data, key, value, str(p))
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise InvalidRecordError(f"unknown section(s) {unknown}; expected {list(SECTIONS)}", file=str(p))
    for s in SECTIONS:
        if not isinstance(data.get(s), dict):
            raise InvalidRecordError(f"section {s!r} is missing or not a mapping", file=str(p))
    for key in ("shard_size", "top_k"):
        if not isinstance(data["run"].get(key), int) or data["run"][key] < 1:
            raise InvalidRecordError(f"run.{key} must be an integer >= 1, got {data['run'].get(key)!r}", file=str(p))
    if not isinstance(data["dft"].get("top_k", 0), int) or data["dft"].get("top_k", 0) < 0:
        raise InvalidRecordError(f"dft.top_k must be an integer >= 0, got {data['dft'].get('top_k')!r}", file=str(p))
    for section, allowed in BACKENDS.items():
        backend = data[section].get("backend", "inline")
        if backend not in allowed:
            raise InvalidRecordError(f"{section}.backend must be one of {', '.join(allowed)}, got {backend!r}", file=str(p))
        if not isinstance(data[section].get(backend) or {}, dict):
            raise InvalidRecordError(f"{section}.{backend}: the backend's options must be a mapping", file=str(p))
    return DesignConfig(str(p), *(data[s] for s in SECTIONS))


#: Where each stage of a design run may run (the screen's executors, :mod:`dosmatgen.screen.executors`): the
#: crystal generator on local/cluster Ray actors, the relaxation on Dask, the DFT through submitit.
BACKENDS = {"generator": ("inline", "ray"), "relax": ("inline", "dask"), "dft": ("inline", "submitit")}


def stage_backend(cfg: DesignConfig, section: str) -> tuple[str, dict[str, Any]]:
    """(backend name, its options) of ``section`` (generator, relax or dft)."""
    sec = getattr(cfg, section)
    backend = sec.get("backend", "inline")
    return backend, dict(sec.get(backend) or {})


def filter_config(cfg: DesignConfig):
    """relax.filter as a :class:`~dosmatgen.screen.stages.FilterConfig`; InvalidRecordError naming a bad key."""
    from dosmatgen.screen.stages import FilterConfig

    raw = dict(cfg.relax.get("filter") or {})
    known = {f.name for f in dataclasses.fields(FilterConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidRecordError(f"relax.filter: unknown key(s) {unknown}; expected {sorted(known)}", file=cfg.path)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            if key == "require_converged":
                out[key] = bool(value)
            elif key == "volume_per_atom":
                lo, hi = (float(v) for v in value)
                if not lo < hi:
                    raise ValueError
                out[key] = (lo, hi)
            else:
                out[key] = None if value is None else float(value)
        except (TypeError, ValueError):
            raise InvalidRecordError(f"relax.filter.{key}: bad value {value!r}", file=cfg.path) from None
    return FilterConfig(**out)
