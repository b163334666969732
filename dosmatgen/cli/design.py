"""``dosmatgen design``: crystals with given DOS-derived properties, or like a reference crystal (docs/design.md).

    dosmatgen design --band-gap 2.0 --n-ef 2.0 --n 256 --out runs/design
    dosmatgen design --tcm 1 --n 64 --source dataset --out runs/tcm
    dosmatgen design --like REF.cif --n 64 --out runs/like
"""

from __future__ import annotations

import argparse
from typing import Any

from dosmatgen.cli.property_args import add_property_target_arguments, property_targets_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("design", help="design crystals from property targets or a reference crystal, through the total DOS")
    add_property_target_arguments(p, "reference thermoelectric whose DOS the candidates must resemble (cosine > 0.9; "
                                     "default with --like: the reference)")
    p.add_argument("--like", default=None, metavar="REF.cif", help="crystal-to-crystal translation: condition on REF's total DOS")
    p.add_argument("--like-gpaw", action="store_true", help="with --like: compute REF's DOS with GPAW when no dataset record matches (else the surrogate)")
    p.add_argument("--source", choices=("dossampler", "dataset", "like"), default=None,
                   help="where the conditioning DOS come from (default: the config's source.kind; 'like' with --like)")
    p.add_argument("--n", type=int, default=256, help="conditioning DOS = candidates (default 256)")
    p.add_argument("--dft-top-k", type=int, default=None, help="GPAW on the best K (default: the config's dft.top_k)")
    p.add_argument("--config", default=None, help="design config YAML (default configs/design/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. relax.options.mlff=emt")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dosmatgen.cli.screen import parse_overrides
    from dosmatgen.design.pipeline import DesignRequest, format_design, run_design

    summary = run_design(DesignRequest(  # no target and no --like: run_design names the missing flags
        out=args.out, n=args.n, targets=property_targets_from_args(args), source=args.source, like=args.like, like_gpaw=args.like_gpaw,
        te_reference=args.te_reference, dft_top_k=args.dft_top_k, config=args.config, overrides=parse_overrides(args.set),
    ))
    print(format_design(summary))
    print(f"summary written to {args.out}/summary/")
    return 0
