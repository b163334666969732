"""Which units of a screening run are still to do: plain run-store logic, shared by every backend."""

from __future__ import annotations

from typing import Any

from dosmatgen.runstore import RunStore

#: (target id, shard index) for the shard stages, (target id, selection slot) for DFT
Unit = tuple[str, int]


def pending_shards(store: RunStore, stage: str) -> list[Unit]:
    """The (target, shard) units of ``stage`` (sample, relax or rank) that the manifest does not mark done, less the
    shards a stage gave up after its retries (:func:`dosmatgen.screen.stages.given_up_shards`)."""
    from dosmatgen.screen.stages import given_up_shards

    out: list[Unit] = []
    for t in store.targets():
        given_up = given_up_shards(store, t.id)
        out += [(t.id, s) for s in t.pending(stage) if s not in given_up]
    return out


def pending_units(store: RunStore, max_attempts: int) -> tuple[list[Unit], list[dict[str, Any]]]:
    """DFT: (slots to run, failure records of the slots given up after ``max_attempts`` failures)."""
    todo, given_up = [], []
    for t in store.targets():
        failures = {int(f["unit"]): f for f in store.manifest.failures("dft", t.id)}
        for k in t.pending("dft"):
            f = failures.get(k)
            if f is not None and int(f.get("attempts", 0)) >= max_attempts:
                given_up.append(f)
            else:
                todo.append((t.id, k))
    return todo, given_up
