"""The relaxer options of one screening run: checked when the config is read, and the run's own elemental-reference
cache.

:func:`check_relax_options` imports ``relax.loader`` and checks ``relax.options`` against it (unknown keys, an
unknown MLFF or force-field option, an unknown optimizer), so a typo fails when the config is loaded, before
anything is sampled.

A relaxer loader with a ``references_cache`` parameter gets ``<run>/references/elemental.json`` unless the config
names a cache, so the elemental references are relaxed once per run (by the first worker that needs them, under
a file lock) and read by every other worker, instead of every worker racing on a cache in $HOME.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from dosmatgen.dotted import resolve_callable
from dosmatgen.errors import InvalidRecordError

#: where a run keeps its elemental references, relative to the run folder
RUN_REFERENCES = "references/elemental.json"


def run_relaxer_options(loader: str, options: dict[str, Any] | None, store_root: str | Path) -> dict[str, Any]:
    """``options`` with ``references_cache`` set to the run's file when the loader takes one and none is given."""
    out = dict(options or {})
    if "references_cache" in inspect.signature(resolve_callable(loader)).parameters and not out.get("references_cache"):
        out["references_cache"] = str(Path(store_root) / RUN_REFERENCES)
    return out


def check_relax_options(loader: str, options: dict[str, Any] | None, *, file: str | None = None) -> None:
    """Raise :class:`InvalidRecordError` naming ``file`` and the key when ``relax.loader`` cannot be imported or
    ``relax.options`` do not fit it: a keyword the loader does not take, an ``mlff`` that is not registered,
    ``mlff_options`` the force field does not take or accept (:func:`~dosmatgen.relax.mlff.check_mlff_options`), an
    ``optimizer`` the batched relaxer does not have."""
    try:
        fn = resolve_callable(loader)
    except InvalidRecordError as exc:
        raise InvalidRecordError(f"relax.loader: {exc.problem}", file=file) from None
    options = dict(options or {})
    try:
        inspect.signature(fn).bind(**options)
    except TypeError as exc:
        raise InvalidRecordError(f"relax.options do not fit {loader}: {exc}", file=file) from None
    if "mlff" in options:
        from dosmatgen.relax.mlff import available_mlffs

        if str(options["mlff"]).lower() not in available_mlffs():
            raise InvalidRecordError(f"relax.options.mlff: unknown MLFF {options['mlff']!r}; choose one of "
                                     f"{', '.join(available_mlffs())}", file=file)
    if "mlff_options" in options:
        from dosmatgen.relax.mlff import check_mlff_options

        mlff_options = options["mlff_options"]
        if mlff_options is not None and not isinstance(mlff_options, dict):
            raise InvalidRecordError(f"relax.options.mlff_options must be a mapping, got {mlff_options!r}", file=file)
        default = inspect.signature(fn).parameters.get("mlff")
        name = options.get("mlff", default.default if default is not None else None)
        if isinstance(name, str):
            try:
                check_mlff_options(name, mlff_options)
            except InvalidRecordError as exc:
                raise InvalidRecordError(f"relax.options.mlff_options: {exc.problem}", file=file) from None
    if "optimizer" in options:
        from dosmatgen.relax.batched_fire import OPTIMIZERS

        if options["optimizer"] not in OPTIMIZERS:
            raise InvalidRecordError(f"relax.options.optimizer: unknown optimizer {options['optimizer']!r}; choose "
                                     f"one of {', '.join(OPTIMIZERS)}", file=file)
