"""``dosmatgen design``: crystals with given DOS-derived properties, or like a reference crystal (docs/design.md).

    dosmatgen design --band-gap 2.0 --n-ef 2.0 --n 256 --out runs/design
    dosmatgen design --tcm 1 --n 64 --source dataset --out runs/tcm
    dosmatgen design --like REF.cif --n 64 --out runs/like
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("design", help="design crystals from property targets or a reference crystal, through the total DOS")
    t = p.add_argument_group("targets (DOS-derived properties of the per-atom total DOS)")
    t.add_argument("--band-gap", type=float, default=None, metavar="EV", help="band gap (paper Algorithm 1), eV, >= 0")
    t.add_argument("--dos-ef", type=float, default=None, metavar="X", help="DOS(E_F), states/eV/atom, >= 0")
    t.add_argument("--n-ef", type=float, default=None, metavar="X", help="N(E_F), the paper's Eq. 6 bin sum, >= 0")
    t.add_argument("--tcm", type=int, default=None, choices=(1, 2), help="transparent conductor of type 1 or 2")
    t.add_argument("--thermoelectric", action="store_true", help="thermoelectric filter (gap 0.1-1 eV, DOS(E_F) = 0)")
    t.add_argument("--te-reference", default=None, metavar="REF.cif",
                   help="reference thermoelectric whose DOS the candidates must resemble (cosine > 0.9; default with --like: the reference)")
    t.add_argument("--rel-tol", type=float, default=0.10, help="relative tolerance of a non-zero target (default 0.10)")
    t.add_argument("--zero-abs-tol", type=float, default=0.10, help="absolute tolerance of a zero target (default 0.10)")
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
    from dosmatgen.design.targets import DesignTargets

    given = any(v is not None for v in (args.band_gap, args.dos_ef, args.n_ef, args.tcm)) or args.thermoelectric
    targets = DesignTargets(band_gap=args.band_gap, dos_ef=args.dos_ef, n_ef=args.n_ef, tcm=args.tcm,
                            thermoelectric=args.thermoelectric, rel_tol=args.rel_tol,
                            zero_abs_tol=args.zero_abs_tol) if given or args.like is None else None
    summary = run_design(DesignRequest(
        out=args.out, n=args.n, targets=targets, source=args.source, like=args.like, like_gpaw=args.like_gpaw,
        te_reference=args.te_reference, dft_top_k=args.dft_top_k, config=args.config, overrides=parse_overrides(args.set),
    ))
    print(format_design(summary))
    print(f"summary written to {args.out}/summary/")
    return 0
