"""Which units of a screening run are still to do: plain run-store logic, shared by every backend."""

from __future__ import annotations

from typing import Any

from dosmatgen.runstore import RunStore

#: (target id, shard index) for the shard stages, (target id, selection slot) for DFT
Unit = tuple[str, int]


def pending_shards(store: RunStore, stage: str) -> list[Unit]:
    """The (target, shard) units of ``stage`` (sample, relax or rank) that the manifest does not mark done, less the
    shards a stage gave up after its retries (:func:`dosmatgen.screen.stages.given_up_shards`), costliest first.

    Order: by the shard's atom count (the sum of its requested atoms per candidate, which sampling and relaxation cost
    grows with), largest first, ties in (target, shard) order. Executors start units in the order given, so the big
    shards start first and small ones end the stage, instead of the largest shard running alone on one worker at the
    end (longest-processing-time-first scheduling; the local screen's shards go from 4 to 8 atoms per candidate).
    """
    from dosmatgen.screen.stages import given_up_shards

    out: list[tuple[int, int, Unit]] = []
    for t in store.targets():
        given_up = given_up_shards(store, t.id)
        requested = t.requested_num_atoms()
        for s in t.pending(stage):
            if s not in given_up:
                a, b = t.shard_rows(s)
                out.append((-int(requested[a:b].sum()), len(out), (t.id, s)))
    return [unit for _, _, unit in sorted(out)]


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
