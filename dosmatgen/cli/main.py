"""Entry point of the ``dosmatgen`` console script.

Each command group lives in its own module under ``dosmatgen.cli`` and exposes
``register(subparsers)``; handlers import heavy libraries lazily so ``dosmatgen --help`` is fast.
Errors derived from :class:`dosmatgen.errors.DosmatgenError` print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dosmatgen import __version__
from dosmatgen.errors import DosmatgenError

#: Command modules, in the order they appear in ``--help``. Add one line per new command group.
COMMAND_MODULES = [
    "dosmatgen.cli.data",
    "dosmatgen.cli.targets",
    "dosmatgen.cli.screen",
    "dosmatgen.cli.design",
    "dosmatgen.cli.loop",
    "dosmatgen.cli.train",
    "dosmatgen.cli.sample",
    "dosmatgen.cli.train_regressor",
    "dosmatgen.cli.surrogate",
    "dosmatgen.cli.evaluate",
    "dosmatgen.cli.relax",
    "dosmatgen.cli.rank",
    "dosmatgen.cli.dft",
    "dosmatgen.cli.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dosmatgen", description="Inverse design of crystals from their density of states.")
    parser.add_argument("--version", action="version", version=f"dosmatgen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def flag_names(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """{field: flag} for the command that ran: each option's dest -> its long flag (``t_start`` -> ``--t-start``),
    plus the command's ``field_flags`` default for fields spelled otherwise (``fix_types`` -> ``--fix-type``)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names: dict[str, str] = {}
    for action in sub.choices[args.command]._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs:
            names[action.dest] = longs[0]
    return {**names, **getattr(args, "field_flags", {})}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = args.func(args)
    except DosmatgenError as err:
        # library errors name config fields (t_start); a CLI user reads the flag (--t-start)
        print(f"dosmatgen {args.command}: error: {err.with_names(flag_names(parser, args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`dosmatgen data info ... | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
