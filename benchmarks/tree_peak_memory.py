#!/usr/bin/env python
"""Run a command and report its wall time and the peak of the SUMMED resident memory of its whole process tree.

GNU time's "maximum resident set size" is the largest single process; a screen runs a driver, Ray actors and
workers, Dask workers and DFT subprocesses at once, so the memory a machine needs is the sum. This samples
``psutil`` every ``--interval`` seconds (RSS of the command and all its descendants, plus any process whose
command line names the run, e.g. Ray's daemons started for it) and writes a JSON report.

    python benchmarks/tree_peak_memory.py --out result.json -- dosmatgen screen benchmarks/screen_1000.yaml

Sampling misses peaks shorter than the interval; the reported peak is a lower bound of the true one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def tree_rss(root_pid: int, extra_match: str | None) -> tuple[int, int]:
    """(summed RSS in bytes, number of processes) of ``root_pid``'s tree and of processes matching ``extra_match``."""
    import psutil

    procs = {}
    try:
        root = psutil.Process(root_pid)
        procs[root.pid] = root
        for child in root.children(recursive=True):
            procs[child.pid] = child
    except psutil.NoSuchProcess:
        pass
    if extra_match:
        for p in psutil.process_iter(["pid", "cmdline"]):
            if extra_match in " ".join(p.info.get("cmdline") or []):
                procs.setdefault(p.pid, p)
    total = 0
    for p in procs.values():
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, len(procs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSON report")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--also-match", default="ray/", help="also count processes whose command line contains this "
                    "(Ray's raylet/GCS are daemonised, not children); '' for none")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak, peak_n, samples = 0, 0, 0
    while proc.poll() is None:
        total, n = tree_rss(proc.pid, args.also_match or None)
        if total > peak:
            peak, peak_n = total, n
        samples += 1
        time.sleep(args.interval)
    wall = time.perf_counter() - t0
    report = {"command": cmd, "returncode": proc.returncode, "wall_s": round(wall, 1),
              "peak_tree_rss_mb": round(peak / 2**20, 1), "processes_at_peak": peak_n, "samples": samples,
              "interval_s": args.interval}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
