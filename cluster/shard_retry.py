"""Per-shard retries for the distributed stages: a task error (CUDA out of memory, an MLFF exception, a lost
worker) costs that shard one attempt instead of aborting the stage.

Each failed attempt is recorded in the run store (``failures/<stage>/<target>/<shard>.json``: the error, the
attempt count, ``given_up``). A shard is retried until it has failed ``max_attempts`` times (config key
``max_shard_attempts`` of the stage's backend section, counted across driver runs like ``dft.max_attempts``);
then it is given up: later stages skip it, the run finishes, and summary.json lists it with its reason
(``failed_shards``). A shard that later succeeds (e.g. after ``--resume`` with a larger limit) loses its
failure record when it is marked done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def attempts_so_far(store: Any, stage: str, target_id: str, shard: int) -> int:
    for f in store.manifest.failures(stage, target_id):
        if int(f["unit"]) == int(shard):
            return int(f.get("attempts", 0))
    return 0


@dataclass
class ShardRetries:
    """Records failed attempts of ``stage`` shards in ``store``; :meth:`failed` says whether to retry."""

    store: Any
    stage: str
    max_attempts: int = 3
    given_up: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if int(self.max_attempts) < 1:
            raise ValueError(f"max_shard_attempts must be >= 1, got {self.max_attempts}")

    def failed(self, unit: tuple[str, int], reason: str) -> bool:
        """Record one failed attempt of ``unit``; True when it should be tried again."""
        tid, shard = unit[0], int(unit[1])
        before = attempts_so_far(self.store, self.stage, tid, shard)
        give_up = before + 1 >= int(self.max_attempts)
        attempts = self.store.manifest.record_failure(self.stage, tid, shard, reason, given_up=give_up)
        if give_up:
            self.given_up.append({"stage": self.stage, "target": tid, "unit": shard, "attempts": attempts, "error": reason})
            log.error("%s shard %s/%d failed %d times; giving up: %s", self.stage, tid, shard, attempts, reason)
        else:
            log.warning("%s shard %s/%d failed (attempt %d of %d); retrying: %s", self.stage, tid, shard, attempts,
                        self.max_attempts, reason)
        return not give_up


def short_reason(exc: BaseException) -> str:
    """One line naming the exception type and its message's last line (Ray/Dask wrap the remote traceback)."""
    text = str(exc).strip()
    last = text.splitlines()[-1] if text else ""
    return f"{type(exc).__name__}: {last}" if last else repr(exc)
