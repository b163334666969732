"""``dosmatgen loop CONFIG.yaml [--resume] [--set key=value ...] [--rounds N] [--check]``: closed-loop discovery.

Rounds of screen -> DFT on the top K plus exploration picks -> grow the dataset -> fine-tune the denoiser and the
surrogate (:mod:`dosmatgen.loop.driver`). ``--resume`` continues a killed or finished loop (``--rounds`` may add
rounds); ``--check`` validates the config, the round-0 screen, the target and the DFT budget, and exits.
"""

from __future__ import annotations

import argparse
from typing import Any


def _handle(args: argparse.Namespace) -> int:
    from dosmatgen.cli.screen import parse_overrides
    from dosmatgen.loop.config import check_loop_config
    from dosmatgen.loop.driver import run_loop

    overrides = parse_overrides(args.set)
    if args.rounds is not None:
        overrides["loop.rounds"] = args.rounds
    if args.check:
        cfg = check_loop_config(args.config, overrides)
        print(f"{args.config}: OK ({cfg.rounds} rounds of {cfg.top_k} top + {cfg.explore} exploration DFT; "
              f"fine-tuning {'on' if cfg.fine_tune else 'off (control)'}; loop dir {cfg.dir})")
        return 0
    result = run_loop(args.config, resume=args.resume, overrides=overrides, progress=not args.no_progress)
    if result["waiting"]:
        print(f"waiting for DFT jobs: rerun `dosmatgen loop {args.config} --resume` when they finish")
        return 0
    print(open(result["report"]).read())
    print(f"report: {result['report']}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("loop", help="closed-loop discovery: screen, DFT, grow the data, fine-tune, repeat",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="loop config YAML (see configs/loop/)")
    p.add_argument("--resume", action="store_true", help="continue the loop in loop.dir")
    p.add_argument("--rounds", type=int, default=None, help="override loop.rounds")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a loop config key, e.g. loop.fine_tune=false or loop.dir=/tmp/x")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--check", action="store_true", help="validate everything that can be checked, then exit")
    p.set_defaults(func=_handle)
