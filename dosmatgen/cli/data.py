"""``dosmatgen data``: build, inspect and export dataset stores.

* ``dosmatgen data build --source SOURCE INPUT... --out STORE.zarr`` reads, validates and featurizes records
  (progress bar on stderr), writes the store and prints a report with every skipped record and why.
  Exit status: 0 when a store was written (even if some records were skipped), 1 when nothing could be
  built (every record was skipped, or the inputs held none), 2 for an error such as an existing store
  without ``--overwrite``. Rerunning an interrupted build resumes it from its staged parts.
* ``dosmatgen data info STORE.zarr [--json]``: counts, elements, atoms-per-structure histogram, DOS
  statistics and split sizes.
* ``dosmatgen data export STORE.zarr --format cif|extxyz|zip --out PATH [--split SPLIT]``.
* ``dosmatgen data pack FOLDER... --out DIR/dataset-NAME.npz [--exclude DIR]``: pack the engine's per-structure
  record files (``records/`` and ``worker-*/records/``) into one compressed flat dataset file that ``data build
  --source gpaw DIR`` reads; ids already packed in the ``--exclude`` folders are left out.
* ``dosmatgen data compute ...``: registered by :mod:`dosmatgen.cli.data_compute` (the GPAW DOS engine).
"""

from __future__ import annotations

import argparse
import json

from dosmatgen.cli.data_compute import add_compute_parser

#: The sources ``data build`` accepts (readers in :mod:`dosmatgen.data.sources`).
SOURCE_CHOICES = ("gpaw", "completedos", "vasprun", "mp", "cif", "csv", "extxyz")
EXPORT_FORMATS = ("cif", "extxyz", "zip")
SPLIT_CHOICES = ("all", "train", "val", "test")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="build, inspect and export datasets", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True

    b = sub.add_parser("build", help="build a dataset store from a source")
    b.add_argument("--source", required=True, choices=SOURCE_CHOICES, help="input format / reader")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="input files or folders")
    b.add_argument("--out", required=True, help="output store (a .zarr folder)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing store")
    b.add_argument("--sigma", type=float, default=0.1, help="extra Gaussian smoothing of the site DOS, eV (default 0.1)")
    b.add_argument("--part-size", type=int, default=128, help="records per staged part (default 128)")
    b.add_argument("--total-from-sites", action="store_true",
                   help="use the summed site DOS when a record has no total DOS (an approximation)")
    b.add_argument("--no-geometry-check", action="store_true", help="skip the overlapping-atoms / cell-volume check")
    b.add_argument("--no-split-dedup", action="store_true",
                   help="keep the id-hash splits as they are (default: a val/test structure with a StructureMatcher "
                        "twin in another split joins train)")
    b.add_argument("--reader-option", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for the source reader (VALUE parsed as JSON when it can be); repeatable")
    b.add_argument("--max-skipped", type=int, default=50, help="skipped records listed in the report (default 50)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("info", help="summarise a dataset store")
    i.add_argument("store", help="dataset store (.zarr folder)")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("export", help="write the structures of a store as CIF, extxyz or a zip of CIFs")
    e.add_argument("store", help="dataset store (.zarr folder)")
    e.add_argument("--format", required=True, choices=EXPORT_FORMATS,
                   help="cif: a folder of <id>.cif (or one multi-block file if --out ends in .cif); extxyz; zip of CIFs")
    e.add_argument("--out", required=True, help="output path")
    e.add_argument("--split", default="all", choices=SPLIT_CHOICES, help="which split to export (default all)")
    e.set_defaults(func=cmd_export)

    k = sub.add_parser("pack", help="pack per-structure GPAW record files into one dataset-*.npz")
    k.add_argument("folders", nargs="+", metavar="FOLDER", help="engine output folders (records/, worker-*/records/)")
    k.add_argument("--out", required=True, help="output file, named dataset-NAME.npz so that the GPAW reader finds it")
    k.add_argument("--exclude", action="append", default=[], metavar="DIR",
                   help="leave out ids already in this folder's dataset*.npz or records/; repeatable")
    k.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="storage type of the DOS arrays (default float16: half the size, <= 0.05%% rounding)")
    k.set_defaults(func=cmd_pack)

    add_compute_parser(sub)


def _parse_reader_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"dosmatgen data build: error: --reader-option expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _command_line(args) -> str:
    parts = ["dosmatgen data build --source", args.source, *args.inputs, "--out", args.out]
    if args.sigma != 0.1:
        parts += ["--sigma", str(args.sigma)]
    if args.total_from_sites:
        parts.append("--total-from-sites")
    if args.no_geometry_check:
        parts.append("--no-geometry-check")
    if args.no_split_dedup:
        parts.append("--no-split-dedup")
    parts += [f"--reader-option {o}" for o in args.reader_option]
    return " ".join(parts)


def cmd_build(args) -> int:
    from dosmatgen.data.build import BuildOptions, build_dataset

    options = BuildOptions(
        sigma_ev=args.sigma,
        part_size=args.part_size,
        overwrite=args.overwrite,
        check_geometry=not args.no_geometry_check,
        total_from_sites=args.total_from_sites,
        reader_options=_parse_reader_options(args.reader_option),
        provenance={"command": _command_line(args)},
        progress=not args.no_progress,
        dedup_splits=not args.no_split_dedup,
    )
    summary = build_dataset(args.source, args.inputs, args.out, options)
    print(summary.report(max_skipped=args.max_skipped))
    return 0 if summary.written else 1


def cmd_info(args) -> int:
    from dosmatgen.data.info import dataset_info, format_info
    from dosmatgen.data.store import DatasetStore

    info = dataset_info(DatasetStore.open(args.store))
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0


def cmd_export(args) -> int:
    from dosmatgen.data.export import export_store

    path, n = export_store(args.store, args.out, fmt=args.format, split=args.split)
    print(f"wrote {n} structures ({args.split}) to {path}")
    return 0


def cmd_pack(args) -> int:
    from pathlib import Path

    from dosmatgen.dft.record_pack import pack_records, packed_ids, record_files, record_ids

    out = Path(args.out)
    if not out.name.startswith("dataset-") or out.suffix != ".npz":
        raise SystemExit(f"dosmatgen data pack: error: --out must be named dataset-NAME.npz, got {out.name!r}")
    if out.exists():
        raise SystemExit(f"dosmatgen data pack: error: {out} exists; packs are never overwritten")
    known: set[str] = set()
    for folder in args.exclude:
        known |= packed_ids(folder)
        known |= record_ids(record_files(folder))
    files = [f for folder in args.folders for f in record_files(folder)]
    summary = pack_records(files, out, exclude=known, dtype=args.dtype)
    print(summary.line())
    return 0 if summary.path is not None else 1
