"""``dosmatgen screen CONFIG.yaml [--resume] [--set key=value ...]``: the screening run.

The orchestration lives in the top-level ``cluster`` package (Ray, Dask, submitit); it is imported only inside
the handler, so the library and ``dosmatgen --help`` never import those frameworks.
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from dosmatgen.errors import InvalidRecordError


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["run.dir=/x", "sample.backend=inline"]`` -> {"run.dir": "/x", ...}; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InvalidRecordError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _handle(args: argparse.Namespace) -> int:
    try:
        from dosmatgen_cluster.screen import run_screen
    except ImportError as exc:
        raise InvalidRecordError(
            f"the screen driver needs the cluster extra (pip install 'dosmatgen[cluster]'): {exc}"
        ) from None
    result = run_screen(
        args.config,
        resume=args.resume,
        overrides=parse_overrides(args.set),
        progress=not args.no_progress,
        stop_after=args.stop_after,
    )
    if result["summary"] is not None:
        print(f"summary written to {result['store']}/summary/")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("screen", help="run a screening campaign: sample, relax/filter, rank, DFT top K")
    p.add_argument("config", help="screen config YAML (see configs/screen/)")
    p.add_argument("--resume", action="store_true", help="continue an existing run (collects submitted DFT jobs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. run.dir=/tmp/x")
    p.add_argument("--stop-after", choices=["sample", "relax", "rank"], default=None, help="end after this stage")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_handle)
