"""The relaxer options of one screening run: the run's own elemental-reference cache.

A relaxer loader with a ``references_cache`` parameter gets ``<run>/references/elemental.json`` unless the config
names a cache, so the elemental references are relaxed once per run (by the first worker that needs them, under
a file lock) and read by every other worker, instead of every worker racing on a cache in $HOME.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from dosmatgen.dotted import resolve_callable

#: where a run keeps its elemental references, relative to the run folder
RUN_REFERENCES = "references/elemental.json"


def run_relaxer_options(loader: str, options: dict[str, Any] | None, store_root: str | Path) -> dict[str, Any]:
    """``options`` with ``references_cache`` set to the run's file when the loader takes one and none is given."""
    out = dict(options or {})
    if "references_cache" in inspect.signature(resolve_callable(loader)).parameters and not out.get("references_cache"):
        out["references_cache"] = str(Path(store_root) / RUN_REFERENCES)
    return out
