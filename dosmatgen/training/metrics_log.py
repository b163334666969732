"""The per-epoch ``metrics.jsonl`` log of a training run, and how a resumed run trims it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def keep_epochs_before(path: str | Path, first_epoch: int) -> int:
    """Rewrite the log at ``path`` with only its rows of epochs before ``first_epoch`` (the epochs a saved training
    state covers), so that a resumed run appends after them. Rows of later epochs, and a line cut short by a killed
    process, are dropped (logged). Returns the number of rows kept; a missing log becomes an empty one."""
    p = Path(path)
    lines = p.read_text().splitlines() if p.exists() else []
    kept, dropped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            epoch = int(row["epoch"])
        except (ValueError, KeyError, TypeError):
            dropped += 1
            continue
        if epoch < first_epoch:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        log.info("%s: dropped %d row(s) written after the saved training state", p, dropped)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("".join(l + "\n" for l in kept))
    tmp.replace(p)
    return len(kept)
