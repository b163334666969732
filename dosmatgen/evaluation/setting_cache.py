"""Finished protocol settings on disk, so that an interrupted ``dosmatgen evaluate --resume`` skips them.

Every setting (guidance × t_start) of the protocol is seeded on its own (batch k of t_start t uses
``shard_seed(seed, "reconstruct-t{t}", k)``; the DOS match uses ``seed``), so a setting's result does not depend on
which settings ran before it. A finished setting is written to ``OUT/settings/<guidance>_t<t>.json`` together with
a fingerprint of everything that changes its numbers: the hashes of the denoiser, surrogate and regressor files, the
store, the ids of the selected structures and the evaluation settings other than the grid itself. On resume a
file is reused only when its fingerprint equals the current run's; anything else is recomputed and overwritten,
and the reason is logged. Files are written atomically (temporary file, then rename), so a run killed mid-write
leaves no half-written setting behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

log = logging.getLogger(__name__)

CACHE_FORMAT = "dosmatgen-evaluation-setting"
CACHE_VERSION = 1
#: Settings fields that select which settings run, not what a setting computes.
GRID_FIELDS = ("t_starts", "guidance")


def evaluation_fingerprint(
    files: Mapping[str, Mapping[str, Any] | None],
    store: str | Path,
    ids: Sequence[str],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """What a setting's numbers depend on.

    Args:
        files: ``{"checkpoint": file_record(...), "surrogate": ..., "regressor": ...}`` (None for a file not given);
            only the sha256 of each enters the fingerprint, so a moved file still matches.
        store: the dataset store (its resolved path).
        ids: the ids of the selected structures, in order.
        settings: :meth:`EvaluationSettings.to_dict`; the grid fields are left out.
    """
    return {
        "files": {name: (rec["sha256"] if rec else None) for name, rec in sorted(files.items())},
        "store": str(Path(store).resolve()),
        "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "n_ids": len(ids),
        "settings": {k: v for k, v in sorted(settings.items()) if k not in GRID_FIELDS},
    }


class SettingCache:
    """Read and write finished settings under ``folder`` for one fingerprint."""

    def __init__(self, folder: str | Path, fingerprint: Mapping[str, Any]):
        self.folder = Path(folder)
        # normalised through JSON so that tuples and lists compare equal after a round trip
        self.fingerprint = json.loads(json.dumps(fingerprint))

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def load(self, key: str) -> dict[str, Any] | None:
        """The saved payload of setting ``key``, or None when there is none or it belongs to another run."""
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable cached setting (%s); recomputing it", p, exc)
            return None
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT or doc.get("version") != CACHE_VERSION:
            log.warning("%s: not a cached evaluation setting of version %d; recomputing it", p, CACHE_VERSION)
            return None
        if doc.get("fingerprint") != self.fingerprint:
            changed = sorted(k for k in self.fingerprint if (doc.get("fingerprint") or {}).get(k) != self.fingerprint[k])
            log.info("%s: cached for different inputs (%s differ); recomputing it", p, ", ".join(changed) or "format")
            return None
        payload = doc.get("payload")
        return payload if isinstance(payload, dict) else None

    def save(self, key: str, payload: Mapping[str, Any]) -> Path:
        """Write setting ``key`` atomically; ``payload`` must be strict JSON (see ``json_ready``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        tmp = p.with_name(p.name + f".tmp-{os.getpid()}")
        doc = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "fingerprint": self.fingerprint, "payload": payload}
        tmp.write_text(json.dumps(doc, allow_nan=False) + "\n")
        os.replace(tmp, p)
        return p
