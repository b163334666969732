"""Finished protocol settings on disk, so that an interrupted ``dosmatgen evaluate --resume`` skips them.

Every setting (guidance × t_start) of the protocol is seeded on its own (batch k of t_start t uses
``shard_seed(seed, "reconstruct-t{t}", k)``; the DOS match uses ``seed``), so a setting's result does not depend on
which settings ran before it. A finished setting is written to ``OUT/settings/<guidance>_t<t>.json`` together with
a fingerprint of everything that changes its numbers: the hashes of the denoiser, surrogate and regressor files, a
hash of the data read (the selected structures and their DOS, the training-split ids used for novelty), the
evaluation settings other than the grid itself, the library versions and a hash of dosmatgen's own source code
(so that a fixed bug is never covered by a cached number). On resume a file is reused only when its fingerprint
equals the current run's; anything else is recomputed, and the reason is logged. A setting's cache file is
removed before it is recomputed and written atomically after its outputs (structures, figures), so a run killed
in between leaves no cache entry that could vouch for another run's output files. On CPU with the same number of
threads a resumed report equals an uninterrupted one; CUDA kernels are not bitwise deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)

CACHE_FORMAT = "dosmatgen-evaluation-setting"
CACHE_VERSION = 1
#: Settings fields that select which settings run, not what a setting computes.
GRID_FIELDS = ("t_starts", "guidance")


def data_sha256(ids: Sequence[str], arrays: Iterable[np.ndarray], training_ids: Sequence[str] | None) -> str:
    """One hash of the evaluated structures: their ids, their arrays (geometry, DOS) and the training-split ids."""
    h = hashlib.sha256("\n".join(ids).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(b"\0training\0" + ("\n".join(training_ids).encode() if training_ids is not None else b"-"))
    return h.hexdigest()


def source_sha256() -> str:
    """A hash of dosmatgen's Python source files (any edit of the library changes it)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def evaluation_fingerprint(
    files: Mapping[str, Mapping[str, Any] | None],
    store: str | Path,
    data: str,
    n_structures: int,
    settings: Mapping[str, Any],
    software: Mapping[str, Any],
) -> dict[str, Any]:
    """What a setting's numbers depend on.

    Args:
        files: ``{"checkpoint": file_record(...), "surrogate": ..., "regressor": ...}`` (None for a file not given);
            only the sha256 of each enters the fingerprint, so a moved file still matches.
        store: the dataset store (its resolved path, for the log; the data themselves are ``data``).
        data: :func:`data_sha256` of the selected structures; ``n_structures``: how many there are.
        settings: :meth:`EvaluationSettings.to_dict`; the grid fields are left out.
        software: library versions (``software_versions()``); the source hash of dosmatgen is added here.
    """
    return {
        "files": {name: (rec["sha256"] if rec else None) for name, rec in sorted(files.items())},
        "store": str(Path(store).resolve()),
        "data_sha256": data,
        "n_structures": int(n_structures),
        "settings": {k: v for k, v in sorted(settings.items()) if k not in GRID_FIELDS},
        "software": dict(software),
        "dosmatgen_source_sha256": source_sha256(),
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

    def discard(self, key: str) -> None:
        """Remove setting ``key`` (before it is recomputed, so that its old entry cannot vouch for new files)."""
        self.path(key).unlink(missing_ok=True)

    def save(self, key: str, payload: Mapping[str, Any]) -> Path:
        """Write setting ``key`` atomically; ``payload`` must be strict JSON (see ``json_ready``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        tmp = p.with_name(p.name + f".tmp-{os.getpid()}")
        doc = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "fingerprint": self.fingerprint, "payload": payload}
        tmp.write_text(json.dumps(doc, allow_nan=False) + "\n")
        os.replace(tmp, p)
        return p
