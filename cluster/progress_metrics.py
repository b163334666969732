"""Run progress on the Ray dashboard: counters exported with ``ray.util.metrics`` (Prometheus names get a ``ray_``
prefix, and Ray exports counters both as ``<name>`` and ``<name>_total``).

* ``dosmatgen_candidates_sampled`` (tag ``target``): written by every sampling actor after each shard;
* ``dosmatgen_sample_shards_failed`` (``target``): shards whose sampling actor died (the shard is requeued);
* ``dosmatgen_candidates_relaxed`` / ``dosmatgen_candidates_failed`` (``target``): candidates that reached a
  relaxed structure / that were rejected or failed in the relax stage, counted by the driver as Dask shards finish.

The counters are created lazily in the process that increments them and only while Ray is initialized; without
Ray they are no-ops, so the inline backends need no Ray.
"""

from __future__ import annotations

from typing import Any

SAMPLED = "dosmatgen_candidates_sampled"
SAMPLE_SHARDS_FAILED = "dosmatgen_sample_shards_failed"
RELAXED = "dosmatgen_candidates_relaxed"
FAILED = "dosmatgen_candidates_failed"

DESCRIPTIONS = {
    SAMPLED: "candidates sampled and written to the run store",
    SAMPLE_SHARDS_FAILED: "sampling shards whose actor died (the shard is requeued)",
    RELAXED: "candidates relaxed by the MLFF (relax stage)",
    FAILED: "candidates rejected before or failed during relaxation (relax stage)",
}


class ProgressCounters:
    """``inc(name, value, target=...)`` on the run's counters; a no-op while Ray is not initialized."""

    def __init__(self) -> None:
        self._counters: dict[str, Any] = {}

    def inc(self, name: str, value: float, *, target: str) -> None:
        import ray

        if value <= 0 or not ray.is_initialized():
            return
        if name not in self._counters:
            from ray.util.metrics import Counter

            self._counters[name] = Counter(name, description=DESCRIPTIONS[name], tag_keys=("target",))
        self._counters[name].inc(float(value), tags={"target": str(target)})
