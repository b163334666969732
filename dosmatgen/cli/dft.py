"""``dosmatgen dft``: DFT validation of candidates (site- and l-projected DOS), resumable, one record per structure.

    dosmatgen dft --engine gpaw|vasp STRUCTURES... --out DIR [--launch-cmd "srun vasp_std"] [--time-limit S]
        [--ranked RANKED.csv] [--retry-failed] [--threads N]
        [--target SPEC [--surrogate CKPT | --baseline-store STORE] [--sites I,J | --element X | --all-sites]]

STRUCTURES are CIF files, folders or zips of CIFs, extxyz or CSV files with a ``cif`` column. ``--ranked`` keeps
only the ids listed in a ranked table of ``dosmatgen rank`` (in its order). The folder layout and resume rules are
those of ``dosmatgen data compute`` (``DIR/records/<id>.npz``, ``DIR/failures.jsonl``, ``DIR/work/<id>/``).

``--engine vasp`` writes pymatgen MPStaticSet + MPNonSCFSet(uniform, NEDOS 3001, LORBIT 11) inputs and runs
``--launch-cmd`` in each step folder; without ``--launch-cmd`` it only writes the inputs and records the structure
as ``pending``: run VASP in ``DIR/work/<id>/static`` (then ``nscf``) and call the same command again. Pending
structures are always picked up again on the next run.

With ``--target`` the target, surrogate and DFT site DOS of every computed structure are compared at its
conditioned site: ``DIR/comparison.csv`` and ``DIR/comparison/<id>.{png,svg}`` (the paper's Fig. 8).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from dosmatgen.cli.rank import add_predictor_arguments, add_site_selection_arguments, predictor_from_args, site_selection_from_args

ENGINES = ("gpaw", "vasp")


def register(subparsers) -> None:
    from dosmatgen.dft.compute import DEFAULT_TIME_LIMIT_S

    p = subparsers.add_parser("dft", help="DFT site/l-projected DOS of candidates (gpaw locally, vasp on HPC), resumable",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("structures", nargs="+", metavar="STRUCTURES", help="CIF files/folders/zips, extxyz or CSV (cif column)")
    p.add_argument("--engine", required=True, choices=ENGINES, help="DFT engine")
    p.add_argument("--out", required=True, type=Path, help="output folder (records/, failures.jsonl, work/)")
    p.add_argument("--launch-cmd", default=None, metavar="CMD",
                   help='vasp: command that runs VASP in a step folder, e.g. "srun vasp_std" (default: write inputs only)')
    p.add_argument("--potcar-spec", action="store_true", help="vasp: write POTCAR.spec even when POTCARs are configured")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                   help=f"wall-clock seconds per structure before it is killed (default {DEFAULT_TIME_LIMIT_S:g})")
    p.add_argument("--retry-failed", action="store_true", help="run again the structures listed as failed")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per calculation (default 1)")
    p.add_argument("--memory-limit-mb", type=int, default=None, help="address-space limit per calculation (MB)")
    p.add_argument("--ranked", default=None, metavar="CSV", help="only the ids of this ranked table (dosmatgen rank's ranked.csv)")
    p.add_argument("--target", default=None, help="compare target vs surrogate vs DFT at the conditioned site (plots, CSV)")
    add_predictor_arguments(p, required=False)
    add_site_selection_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_dft)


def build_engine(args: argparse.Namespace):
    from dosmatgen.dft.engine import get_engine
    from dosmatgen.errors import InvalidRecordError

    if args.engine == "vasp":
        return get_engine("vasp", launch_cmd=args.launch_cmd, potcar_spec=True if args.potcar_spec else None)
    if args.launch_cmd or args.potcar_spec:
        raise InvalidRecordError("--launch-cmd and --potcar-spec are VASP options; the gpaw engine runs in-process")
    return get_engine(args.engine, threads=args.threads)


def _ranked_ids(path: str) -> list[str]:
    from dosmatgen.errors import InvalidRecordError

    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("ranked table not found", file=str(p))
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        if "id" not in (reader.fieldnames or []):
            raise InvalidRecordError("ranked table has no 'id' column", file=str(p))
        return [row["id"] for row in reader if row.get("id")]


def read_structures(paths: list[str]):
    """Structure-only records of all inputs and the errors of unreadable ones. CIF files, folders, zips and extxyz
    are read as ``dosmatgen rank`` reads them (same ids, so a ranked table's ids match); CSV files with a ``cif``
    column as ``dosmatgen data compute`` reads them."""
    from dosmatgen.cli.data_compute import read_structure_inputs
    from dosmatgen.dos.record import DOSRecord
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.io.structure_files import iter_structures

    records, errors = [], []
    for raw in paths:
        if raw.lower().endswith(".csv"):
            r, e = read_structure_inputs([raw])
            records += r
            errors += e
            continue
        if not Path(raw).exists():
            raise InvalidRecordError("no such file or directory", file=raw)
        for rid, item in iter_structures(raw):
            if isinstance(item, InvalidRecordError):
                errors.append(item)
            else:
                records.append(DOSRecord(id=rid, source=Path(raw).name, crystal=item))
    return records, errors


def run_dft(args: argparse.Namespace) -> int:
    from dosmatgen.dft.compute import FAILURES_FILE, compute_dos_dataset, read_failures
    from dosmatgen.errors import InvalidRecordError

    engine = build_engine(args)
    engine.check_available()
    target = selection = predictor = None
    if args.target:  # resolve early: a bad target or checkpoint must fail before hours of DFT
        from dosmatgen.targets import resolve_target

        target = resolve_target(args.target)
        selection = site_selection_from_args(args, target)
        predictor = predictor_from_args(args)
    elif args.surrogate or args.baseline_store:
        raise InvalidRecordError("--surrogate/--baseline-store are used for the comparison with --target; give --target too")

    records, errors = read_structures(args.structures)
    for err in errors:
        print(f"skipped (invalid input): {err}", file=sys.stderr)
    if args.ranked:
        wanted = _ranked_ids(args.ranked)
        by_id = {r.id: r for r in records}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise InvalidRecordError(f"{len(missing)} ranked ids are not among the structures (first: {missing[0]!r})", file=args.ranked)
        records = [by_id[i] for i in wanted]

    args.out.mkdir(parents=True, exist_ok=True)
    pending_before = {i for i, e in read_failures(args.out).items() if e.get("kind") == "pending"}
    common = dict(time_limit_s=args.time_limit, threads=args.threads, memory_limit_mb=args.memory_limit_mb,
                  progress=not args.no_progress)  # fmt: skip
    summaries = []
    again = [r for r in records if r.id in pending_before]
    if again:  # a pending structure may have been run by hand or by a batch job since: always look again
        summaries.append(compute_dos_dataset(again, args.out, engine, retry_failed=True, **common))
    rest = [r for r in records if r.id not in pending_before]
    summaries.append(compute_dos_dataset(rest, args.out, engine, retry_failed=args.retry_failed, **common))

    done = sum(len(s.done) for s in summaries)
    failed = [f for s in summaries for f in s.failed]
    pending = [f for f in failed if f["kind"] == "pending"]
    real_failures = [f for f in failed if f["kind"] != "pending"]
    skipped = sum(s.skipped_done for s in summaries)
    skipped_failed = sum(s.skipped_failed for s in summaries)
    for entry in real_failures:
        print(f"failed {entry['id']}: {entry['kind']}: {entry['error']}", file=sys.stderr)
    print(f"{args.engine} DOS into {args.out}: {done} computed, {len(real_failures)} failed, {len(pending)} pending (inputs written), "
          f"{skipped} already done, {skipped_failed} failed before (--retry-failed to rerun), {len(errors)} unreadable inputs")  # fmt: skip
    if pending:
        print(f"pending: run VASP in {args.out}/work/<id>/static and then nscf (or pass --launch-cmd), then run this command again")
    if real_failures:
        print(f"failures are listed in {args.out / FAILURES_FILE} (logs in {args.out}/work/<id>/)")
    if target is not None:
        _compare(args, records, target, selection, predictor)
    return 0


def _compare(args, records, target, selection, predictor) -> None:
    from dosmatgen.dft.compute import record_name, record_path
    from dosmatgen.dft.record_file import read_record_npz
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.ranking.comparison import compare_to_dft, plot_comparison, write_comparison_csv

    comparisons = []
    for r in records:
        path = record_path(args.out, r.id)
        if not path.exists():
            continue
        try:
            comp = compare_to_dft(read_record_npz(path), target.features, selection, predictor)
        except InvalidRecordError as err:
            print(f"no comparison for {r.id}: {err}", file=sys.stderr)
            continue
        plot_comparison(comp, args.out / "comparison" / record_name(r.id), target_name=target.name)
        comparisons.append(comp)
    if comparisons:
        path = write_comparison_csv(comparisons, args.out / "comparison.csv")
        print(f"target vs {'surrogate vs ' if predictor is not None else ''}DFT: {len(comparisons)} structures in {path} "
              f"and {args.out / 'comparison'}/")  # fmt: skip
