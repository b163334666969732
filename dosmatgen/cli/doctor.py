"""``dosmatgen doctor [--orb-weights PATH] [--json]``: which engines and optional pieces work on this machine.

Prints one line per component (ok / missing / error, with versions, paths, and what to do when something is
missing). Exit status 0 when the core works (torch, the bundled dataset, checkpoints and targets), 1 otherwise;
optional pieces that are missing do not change it.
"""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="report which engines work here (GPAW, MLFFs, Orb weights, Ray dashboard, mpi4py)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orb-weights", default=None, help="an Orb checkpoint to check that it loads")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from dosmatgen import __version__
    from dosmatgen.diagnostics import OK, run_checks

    checks = run_checks(orb_weights=args.orb_weights)
    core_ok = all(c.status == OK for c in checks if c.required)
    if args.json:
        print(json.dumps({"dosmatgen": __version__, "core_ok": core_ok, "checks": [c.to_dict() for c in checks]}, indent=1))
    else:
        print(f"dosmatgen {__version__}")
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"  {c.name:<{width}}  {c.status:<7}  {c.detail}")
        print("core: ok" if core_ok else "core: BROKEN (see the lines marked required above)")
    return 0 if core_ok else 1
