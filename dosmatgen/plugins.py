"""Named extension points of the library, provided by the orchestration package (``dosmatgen_cluster``).

The library has no import statement for the orchestration package, nor for Ray, Dask or submitit. A backend that a
config or a flag names (``sample.backend: ray``, ``dosmatgen train --distributed``) is looked up here:

1. in the registry filled by :func:`register` (built-ins such as the inline screen executor, tests, user code);
2. else in :data:`PROVIDERS`, ``"module:attribute"`` specs like packaging entry points, imported on first use.

So a laptop run that names no cluster backend never imports the orchestration package or its frameworks, and a
missing cluster extra is reported as one clear error naming the backend.
"""

from __future__ import annotations

from typing import Any

from dosmatgen.dotted import resolve_callable
from dosmatgen.errors import InvalidRecordError

#: screen stage executors (:class:`dosmatgen.screen.executors.ScreenExecutor` factories taking the backend options)
SCREEN_EXECUTOR = "screen-executor"
#: ``train_to_folder(config_dict, store, out, ...)`` of a distributed trainer
DISTRIBUTED_TRAINING = "distributed-training"
#: ``record(store_root)`` writes the scheduler's accounting of a run (node-/GPU-hours) into the run folder
RUN_ACCOUNTING = "run-accounting"

PROVIDERS: dict[tuple[str, str], str] = {
    (SCREEN_EXECUTOR, "ray"): "dosmatgen_cluster.executors:RayExecutor",
    (SCREEN_EXECUTOR, "dask"): "dosmatgen_cluster.executors:DaskExecutor",
    (SCREEN_EXECUTOR, "submitit"): "dosmatgen_cluster.executors:SubmititExecutor",
    (DISTRIBUTED_TRAINING, "ray"): "dosmatgen_cluster.ray_train:train_to_folder",
    (RUN_ACCOUNTING, "slurm"): "dosmatgen_cluster.accounting:record_slurm_usage",
}

_REGISTRY: dict[tuple[str, str], Any] = {}


class PluginUnavailable(InvalidRecordError):
    """A named backend exists but cannot be imported here (usually: the cluster extra is not installed)."""


def register(kind: str, name: str, obj: Any) -> None:
    """Make ``obj`` the ``kind`` backend called ``name`` (replaces an earlier registration)."""
    _REGISTRY[(kind, name)] = obj


def names(kind: str) -> list[str]:
    return sorted({n for k, n in (*_REGISTRY, *PROVIDERS) if k == kind})


def lookup(kind: str, name: str) -> Any:
    """The ``kind`` backend called ``name``; InvalidRecordError for an unknown name, PluginUnavailable when its
    provider cannot be imported."""
    if (kind, name) in _REGISTRY:
        return _REGISTRY[(kind, name)]
    spec = PROVIDERS.get((kind, name))
    if spec is None:
        raise InvalidRecordError(f"no {kind} called {name!r} (known: {', '.join(names(kind))})")
    try:
        obj = resolve_callable(spec)
    except InvalidRecordError as exc:
        raise PluginUnavailable(f"the {name!r} {kind} needs the cluster extra "
                                f"(pip install 'dosmatgen[cluster]'): {exc}") from None
    register(kind, name, obj)
    return obj
