"""Slurm accounting of a run: node-hours and GPU-hours of its jobs from ``sacct``.

:func:`record_slurm_usage` asks ``sacct`` about the screen's own job (``SLURM_JOB_ID``: the GPU allocation, up to
now when it is still running) and the DFT jobs the run submitted (``<run>/dft_submissions.json``) and writes
``<run>/accounting/slurm.json``, which :func:`dosmatgen.screen.summary.write_summary` adds to summary.json and
ranked.md. Each job's node-hours are ``ElapsedRaw x NNodes / 3600`` and its GPU-hours ``ElapsedRaw x GPUs / 3600``
(GPUs from ``AllocTRES`` ``gres/gpu=N``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any

SLURM_USAGE_FILE = "accounting/slurm.json"
log = logging.getLogger(__name__)


def parse_sacct(text: str) -> list[dict[str, Any]]:
    """Rows of ``sacct -X -n -P -o JobID,JobName,ElapsedRaw,NNodes,AllocTRES`` as dicts with hours."""
    rows = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        job_id, name, elapsed, nodes, tres = parts[:5]
        gpus = re.search(r"gres/gpu(?::[\w-]+)?=(\d+)", tres)
        seconds, n_nodes, n_gpus = int(elapsed or 0), int(nodes or 0), int(gpus.group(1)) if gpus else 0
        rows.append({"job_id": job_id, "name": name, "seconds": seconds, "nodes": n_nodes, "gpus": n_gpus,
                     "node_hours": seconds * n_nodes / 3600.0, "gpu_hours": seconds * n_gpus / 3600.0})
    return rows


def sacct_usage(job_ids: list[str], timeout_s: float = 60.0) -> list[dict[str, Any]]:
    if not job_ids:
        return []
    proc = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,JobName,ElapsedRaw,NNodes,AllocTRES", "-j",
                           ",".join(sorted(set(job_ids)))], capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"sacct failed ({proc.returncode}): {proc.stderr.strip()}")
    return parse_sacct(proc.stdout)


def record_slurm_usage(store_root: str | Path, environ: Any = None) -> Path | None:
    """Write ``<run>/accounting/slurm.json`` for the current job and the run's DFT jobs; None when not on Slurm."""
    from dosmatgen_cluster.submitit_dft import slurm_job_ids

    env = os.environ if environ is None else environ
    root = Path(store_root)

    class _Store:  # slurm_job_ids only needs .root
        pass

    s = _Store()
    s.root = root
    own = [env["SLURM_JOB_ID"]] if env.get("SLURM_JOB_ID") else []
    dft = sorted({j.split("_")[0] for j in slurm_job_ids(s)})
    if not own and not dft:
        return None
    payload: dict[str, Any]
    try:
        rows = sacct_usage(own + dft)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        # no accounting database (a test cluster) must not fail a finished screen: the summary shows the error
        log.warning("no Slurm accounting for this run: %s", exc)
        payload = {"jobs": [], "error": str(exc)}
    else:
        for r in rows:
            r["role"] = "screen" if r["job_id"] in own else "dft"
        payload = {"jobs": rows}
    out = root / SLURM_USAGE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out)
    return out
