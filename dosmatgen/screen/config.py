"""The ``dosmatgen screen`` YAML config as dataclasses; every validation error names the offending key.

Top-level sections: ``run``, ``targets``, ``sample``, ``relax``, ``rank``, ``dft`` (see configs/screen/*.yaml,
which document every key). Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dosmatgen.dos.grid import EnergyGrid, GPAW_V1_GRID
from dosmatgen.errors import InvalidRecordError
from dosmatgen.screen.relax_options import check_relax_options
from dosmatgen.screen.stages import FilterConfig

SAMPLE_BACKENDS = ("inline", "ray")
RELAX_BACKENDS = ("inline", "dask")
DFT_BACKENDS = ("inline", "submitit")


@dataclass(frozen=True)
class TargetConfig:
    """One target: ``target`` is a :func:`dosmatgen.targets.resolve_target` spec (a built-in name such as
    ``target-Au3Ni``, a DOS file, or ``STORE.zarr:ID:SITE``), or ``unconditioned: true``.
    ``site`` is the reference site the target DOS belongs to (used to compare DFT results with the target)."""

    id: str
    num_atoms: tuple[int, ...]
    candidates_per_num_atoms: int
    target: str | None = None
    site: int = 0
    unconditioned: bool = False
    #: this target's overrides of relax.filter (e.g. max_formation_energy, max_energy_above_hull)
    filter: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageConfig:
    backend: str
    loader: str
    options: dict[str, Any] = field(default_factory=dict)
    backend_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScreenConfig:
    path: Path
    run_dir: Path
    seed: int
    shard_size: int
    max_atoms: int
    top_k: int
    dos_grid: EnergyGrid
    dos_channels: tuple[str, ...]
    targets: tuple[TargetConfig, ...]
    sample: StageConfig
    relax: StageConfig
    filters: FilterConfig
    rank: StageConfig
    dft: StageConfig
    dft_max_attempts: int

    def filters_for(self, target_id: str) -> FilterConfig:
        """relax.filter with the target's own thresholds (``targets[i].filter``) applied."""
        t = next(t for t in self.targets if t.id == target_id)
        return dataclasses.replace(self.filters, **t.filter) if t.filter else self.filters

    def filters_by_target(self) -> dict[str, FilterConfig]:
        return {t.id: self.filters_for(t.id) for t in self.targets}


class _Section:
    """A dict with the dotted key path of every access, for error messages."""

    def __init__(self, data: Any, key: str, file: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidRecordError(f"{key}: expected a mapping, got {type(data).__name__}", file=file)
        self.data, self.key, self.file = data, key, file
        self.used: set[str] = set()

    def _k(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> InvalidRecordError:
        return InvalidRecordError(f"{self._k(name)}: {problem}", file=self.file)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, check=None) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is ...:
                raise self.error(name, "required key is missing")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value is not None and not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            raise self.error(name, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise self.error(name, problem)
        return value

    def section(self, name: str) -> "_Section":
        self.used.add(name)
        return _Section(self.data.get(name), self._k(name), self.file)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _positive(v: Any) -> str | None:
    return None if v >= 1 else "must be >= 1"


def _stage(sec: _Section, backends: tuple[str, ...], default_backend: str, default_loader: str) -> StageConfig:
    backend = sec.get("backend", str, default_backend, check=lambda v: None if v in backends else f"must be one of {backends}")
    loader = sec.get("loader", str, default_loader, check=lambda v: None if v.count(":") == 1 else "must look like 'module:function'")
    options = sec.get("options", dict, {}) or {}
    backend_options = sec.get(backend, dict, {}) or {}
    for other in backends:
        sec.used.add(other)
    return StageConfig(backend, loader, dict(options), dict(backend_options))


def _expand_env(node: Any) -> Any:
    """Expand ``$VAR``/``${VAR}`` in every string of the YAML tree (unset variables are left as written)."""
    if isinstance(node, str):
        return os.path.expandvars(node)
    if isinstance(node, list):
        return [_expand_env(v) for v in node]
    if isinstance(node, dict):
        return {k: _expand_env(v) for k, v in node.items()}
    return node


#: relax.filter keys a target may override (thresholds that depend on the chemistry of the target)
TARGET_FILTER_KEYS = ("max_formation_energy", "max_energy_above_hull")


def _filter_overrides(t: "_Section") -> dict[str, Any]:
    f = t.section("filter") if "filter" in t.data else None
    if f is None:
        return {}
    values = {k: f.get(k, float, None) for k in TARGET_FILTER_KEYS}
    out = {k: v for k, v in values.items() if k in f.data}
    f.finish()
    return out


def load_screen_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> ScreenConfig:
    """Read and validate a screen config. ``overrides`` maps dotted keys (e.g. ``"run.dir"``) to values."""
    path = Path(path)
    file = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InvalidRecordError("config file not found", file=file) from None
    except yaml.YAMLError as exc:
        raise InvalidRecordError(f"not valid YAML: {exc}", file=file) from None
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    raw = _expand_env(raw)
    base = path.resolve().parent

    def resolve(p: str | None) -> str | None:
        if p is None:
            return None
        p = os.path.expandvars(os.path.expanduser(p))
        return str(p if os.path.isabs(p) else (base / p))

    top = _Section(raw, "", file)
    run = top.section("run")
    # the run directory is relative to the working directory (outputs), input files to the config's folder
    run_dir = Path(os.path.expandvars(os.path.expanduser(run.get("dir", str)))).absolute()
    seed = run.get("seed", int, 0, check=lambda v: None if v >= 0 else "must be >= 0")
    shard_size = run.get("shard_size", int, 50, check=_positive)
    max_atoms = run.get("max_atoms", int, 20, check=_positive)
    run.finish()

    targets_raw = top.get("targets", list)
    if not targets_raw:
        raise top.error("targets", "needs at least one target")
    targets = []
    for i, traw in enumerate(targets_raw):
        t = _Section(traw, f"targets[{i}]", file)
        num_atoms = t.get("num_atoms", list, check=lambda v: None if v and all(isinstance(n, int) and n >= 1 for n in v) else "must be a non-empty list of positive integers")
        per = t.get("candidates_per_num_atoms", int, check=_positive)
        spec = t.get("target", str, None)
        if spec is not None and not spec.startswith("target-") and ":" not in spec:
            spec = resolve(spec)  # a DOS file relative to the config
        tc = TargetConfig(
            id=t.get("id", str),
            num_atoms=tuple(num_atoms),
            candidates_per_num_atoms=per,
            target=spec,
            site=t.get("site", int, 0, check=lambda v: None if v >= 0 else "must be >= 0"),
            unconditioned=t.get("unconditioned", bool, False),
            filter=_filter_overrides(t),
        )
        if (tc.target is None) == (not tc.unconditioned):
            raise t.error("target", "give exactly one of 'target' (a target spec) or 'unconditioned: true'")
        if max(tc.num_atoms) > max_atoms:
            raise t.error("num_atoms", f"{max(tc.num_atoms)} exceeds run.max_atoms={max_atoms}")
        t.finish()
        targets.append(tc)
    ids = [t.id for t in targets]
    if len(set(ids)) != len(ids):
        raise top.error("targets", f"duplicate target ids {ids}")

    sample_sec = top.section("sample")
    sample = _stage(sample_sec, SAMPLE_BACKENDS, "inline", "dosmatgen.screen.baseline:load_random_sampler")
    sample_sec.finish()

    relax_sec = top.section("relax")
    relax = _stage(relax_sec, RELAX_BACKENDS, "inline", "dosmatgen.screen.baseline:load_emt_relaxer")
    f = relax_sec.section("filter")
    vpa = f.get("volume_per_atom", list, [2.0, 150.0], check=lambda v: None if len(v) == 2 and v[0] < v[1] else "must be [min, max]")
    filters = FilterConfig(
        require_converged=f.get("require_converged", bool, True),
        min_distance=f.get("min_distance", float, 0.5),
        max_formation_energy=f.get("max_formation_energy", float, None),
        volume_per_atom=(float(vpa[0]), float(vpa[1])),
        max_energy_above_hull=f.get("max_energy_above_hull", float, None),
    )
    f.finish()
    relax_sec.finish()
    check_relax_options(relax.loader, relax.options, file=file)

    rank_sec = top.section("rank")
    rank = _stage(rank_sec, ("inline",), "inline", "dosmatgen.screen.baseline:load_formation_energy_scorer")
    top_k = rank_sec.get("top_k", int, 10, check=_positive)
    rank_sec.finish()

    dft_sec = top.section("dft")
    dft = _stage(dft_sec, DFT_BACKENDS, "inline", "dosmatgen.dft.engine:get_engine")
    max_attempts = dft_sec.get("max_attempts", int, 2, check=_positive)
    grid = dft_sec.get("dos_grid", dict, GPAW_V1_GRID.to_dict())
    try:
        dos_grid = EnergyGrid.from_dict(grid)
    except (KeyError, TypeError, ValueError) as exc:
        raise dft_sec.error("dos_grid", f"needs emin < emax and n >= 2 ({exc})") from None
    channels = dft_sec.get("dos_channels", list, ["s", "p", "d"], check=lambda v: None if v and all(isinstance(c, str) for c in v) else "must be a list of names")
    dft_sec.finish()
    hull_cut = filters.max_energy_above_hull is not None or any("max_energy_above_hull" in t.filter for t in targets)
    if hull_cut and relax.loader.endswith(":load_mlff_relaxer") and not relax.options.get("competing_phases"):
        raise top.error("relax.filter.max_energy_above_hull",
                        "needs relax.options.competing_phases (without them every candidate would fail the cut)")
    top.finish()
    return ScreenConfig(path, run_dir, seed, shard_size, max_atoms, top_k, dos_grid, tuple(channels),
                        tuple(targets), sample, relax, filters, rank, dft, max_attempts)
