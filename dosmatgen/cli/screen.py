"""``dosmatgen screen CONFIG.yaml [--resume] [--set key=value ...] [--stop-after STAGE] [--check]``: a screening run.

The driver is the library's (:mod:`dosmatgen.screen.driver`); cluster backends are found by name from the config,
so ``dosmatgen --help`` and an inline screen never import Ray, Dask or submitit. ``--check`` validates the options,
the config, its loaders and backends, and exits: slurm/screen.sh runs it before it starts Ray.
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
    from dosmatgen.screen.driver import check_screen, run_screen

    overrides = parse_overrides(args.set)
    if args.check:
        cfg = check_screen(args.config, overrides)
        backends = ", ".join(f"{s}={getattr(cfg, s).backend}" for s in ("sample", "relax", "rank", "dft"))
        print(f"{args.config}: OK ({len(cfg.targets)} target(s); {backends}; run dir {cfg.run_dir})")
        return 0
    result = run_screen(
        args.config,
        resume=args.resume,
        overrides=overrides,
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
    p.add_argument("--check", action="store_true",
                   help="validate the options, config, loaders and backends, then exit (runs nothing)")
    p.set_defaults(func=_handle)
