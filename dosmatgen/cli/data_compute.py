"""``dosmatgen data compute``: DFT site/l-projected DOS for structure files, one record per structure.

    dosmatgen data compute --engine gpaw STRUCTURES... --out DIR [--time-limit S] [--retry-failed] [--threads N]

STRUCTURES are CIF files, folders of CIFs, zips of CIFs, extxyz files or CSV files with a ``cif`` column
(CDVAE style; the id comes from ``--id-column``). Unreadable records are reported and skipped. The run is
resumable: rerunning skips structures with a record in ``DIR/records`` and those listed in
``DIR/failures.jsonl`` (unless ``--retry-failed``). See :mod:`dosmatgen.dft.compute` for the folder layout.

``dosmatgen.cli.data`` calls :func:`add_compute_parser` to add this subcommand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_compute_parser(data_subparsers) -> argparse.ArgumentParser:
    """Add the ``compute`` subcommand to the ``data`` command's subparsers and return its parser."""
    from dosmatgen.dft.compute import DEFAULT_TIME_LIMIT_S
    from dosmatgen.dft.engine import available_engines

    p = data_subparsers.add_parser(
        "compute",
        help="compute site- and l-projected DOS with a DFT engine (resumable, one record per structure)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("structures", nargs="+", metavar="STRUCTURES", help="CIF files/folders/zips, extxyz or CSV (cif column)")
    p.add_argument("--engine", default="gpaw", choices=available_engines(), help="DFT engine (default: gpaw)")
    p.add_argument("--out", required=True, type=Path, help="output folder (records/, failures.jsonl, work/)")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                   help=f"wall-clock seconds per structure before it is killed (default {DEFAULT_TIME_LIMIT_S:g})")
    p.add_argument("--retry-failed", action="store_true", help="run again the structures listed in failures.jsonl")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per calculation (default 1)")
    p.add_argument("--memory-limit-mb", type=int, default=None, help="address-space limit per calculation (MB)")
    p.add_argument("--cif-column", default="cif", help="CSV column holding CIF text (default: cif)")
    p.add_argument("--id-column", default="material_id", help="CSV column holding the id (default: material_id)")
    p.add_argument("--id-prefix", default="", help="prefix added to every id (e.g. 'perov5-')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_compute)
    return p


def read_structure_inputs(paths: list[str], *, cif_column: str = "cif", id_column: str = "material_id"):
    """Structure-only records of all inputs: ``(records, errors)`` (errors are located InvalidRecordErrors)."""
    from dosmatgen.data.sources.structure_only import read_cif, read_csv, read_extxyz
    from dosmatgen.errors import InvalidRecordError

    records, errors = [], []
    for raw in paths:
        path = Path(raw)
        name = path.name.lower()
        if name.endswith(".csv"):
            items = read_csv(path, cif_column=cif_column, id_column=id_column, source="csv")
        elif name.endswith((".extxyz", ".xyz")):
            items = read_extxyz(path, source="extxyz")
        else:
            items = read_cif(path, source="cif")
        for item in items:
            (errors if isinstance(item, InvalidRecordError) else records).append(item)
    return records, errors


def run_compute(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from dosmatgen.dft.compute import FAILURES_FILE, compute_dos_dataset
    from dosmatgen.dft.engine import get_engine

    engine = get_engine(args.engine)
    engine.check_available()
    records, errors = read_structure_inputs(args.structures, cif_column=args.cif_column, id_column=args.id_column)
    for err in errors:
        print(f"skipped (invalid input): {err}", file=sys.stderr)
    if args.id_prefix:
        records = [replace(r, id=f"{args.id_prefix}{r.id}") for r in records]
    summary = compute_dos_dataset(
        records,
        args.out,
        engine,
        args.time_limit,
        retry_failed=args.retry_failed,
        threads=args.threads,
        memory_limit_mb=args.memory_limit_mb,
        progress=not args.no_progress,
    )
    for entry in summary.failed:
        print(f"failed {entry['id']}: {entry['kind']}: {entry['error']}", file=sys.stderr)
    print(f"{args.engine} DOS into {args.out}: {summary.line()}; {len(errors)} unreadable input records")
    if summary.seconds:
        import numpy as np

        s = np.array(list(summary.seconds.values()))
        print(f"DFT seconds per structure: median {np.median(s):.1f}, max {s.max():.1f} (threads={args.threads})")
    if summary.failed:
        print(f"failures are listed in {args.out / FAILURES_FILE}")
    return 0
