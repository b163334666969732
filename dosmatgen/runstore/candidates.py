"""Candidates of a run store as (id, crystal) pairs, so that tools made for structure files (``dosmatgen relax``)
also take a screening run.

A run is recognised by its ``store.zarr`` group: pass the run directory or the ``store.zarr`` folder itself.
Ids are ``<target>/<row>`` (the candidate's row in the run), which is also how the ranked table names them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.errors import StoreError
from dosmatgen.runstore.store import STORE_DIRNAME, RunStore


def run_root(path: str | os.PathLike) -> Path | None:
    """The run directory when ``path`` is a run (its directory or its ``store.zarr``), else None."""
    p = Path(path)
    if p.name == STORE_DIRNAME and (p / "zarr.json").is_file():
        return p.parent
    if (p / STORE_DIRNAME / "zarr.json").is_file():
        return p
    return None


def iter_run_candidates(path: str | os.PathLike, stage: str = "sample", targets: Sequence[str] | None = None,
                        ) -> Iterator[tuple[str, Crystal]]:
    """Every candidate of the run with a structure after ``stage`` ("sample" or "relax"), in row order.

    ``targets`` restricts to those target ids (default all). Rows without a structure (not sampled yet, failed
    relaxation) are skipped. Raises StoreError for a path that is not a run, an unknown target or stage.
    """
    root = run_root(path)
    if root is None:
        raise StoreError(f"{path}: not a run directory (no {STORE_DIRNAME} inside)")
    store = RunStore.open(root, mode="r")
    chosen = list(targets) if targets else store.target_ids
    unknown = sorted(set(chosen) - set(store.target_ids))
    if unknown:
        raise StoreError(f"{root}: no target(s) {unknown}; the run has {store.target_ids}")
    for target_id in chosen:
        t = store.target(target_id)
        for shard in range(t.num_shards):
            a, _ = t.shard_rows(shard)
            for i, crystal in enumerate(t.read_crystals(stage, shard)):
                if crystal is not None:
                    rid = f"{target_id}/{a + i}"
                    yield rid, crystal.with_metadata(id=rid)
