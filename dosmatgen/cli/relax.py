"""``dosmatgen relax IN... --mlff chgnet --out OUTDIR``: batched MLFF relaxation of CIF / extxyz / zip inputs
or of the candidates of a screening run (a run directory, or its ``store.zarr``).

A run is read, never written: its candidates after ``--stage`` (``sample``, default, or ``relax``) of every target
(or those named by ``--target``) are relaxed here, with ids ``<target>/<row>``. (Inside a screen the relax
stage writes into the run itself; ``dosmatgen screen --resume`` continues it.)

Writes into OUTDIR:

* ``relaxed.extxyz`` and ``relaxed_cif.zip``: the relaxed structures (converged or not; failed ones are left out);
* ``relax_table.csv`` and ``relax_table.json``: one row per input record, with status
  (converged / not_converged / failed / rejected / unreadable), reason, steps, fmax, unrelaxed and relaxed
  energies (eV and eV/atom), formation energies (eV/atom, same MLFF's elemental references) and whether
  the record passes the formation-energy threshold.

Exit status 0 when at least one structure was relaxed, 1 when none was, 2 for bad arguments or input.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("relax", help="relax structures with a machine-learned force field (batched)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IN", help="CIF files, folders or zips of CIFs, extxyz files, run directories")
    p.add_argument("--stage", choices=["sample", "relax"], default="sample", help="for a run: structures after this stage (default sample)")
    p.add_argument("--target", action="append", default=None, help="for a run: only this target (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mlff", default="chgnet", help="force field: chgnet (default), orb, sevenn, emt, lj")
    p.add_argument("--mlff-weights", default=None, help="local checkpoint (needed for orb; optional for sevenn)")
    p.add_argument("--mlff-model", default=None, help="backend model name (orb: orb-v2, orb-v3-conservative-inf-omat, ...; sevenn: 7net-0, ...)")
    p.add_argument("--mlff-allow-download", action="store_true", help="let the backend download missing weights (needs network)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--fmax", type=float, default=0.05, help="convergence threshold, eV/A (default 0.05)")
    p.add_argument("--max-steps", type=int, default=500, help="optimizer steps per structure (default 500)")
    p.add_argument("--batch-size", type=int, default=64, help="structures per MLFF call (default 64)")
    p.add_argument("--optimizer", choices=("fire", "bfgs"), default="fire",
                   help="per-structure optimizer on the Frechet cell filter: ASE's FIRE (default) or BFGS")
    p.add_argument("--no-formation-energy", action="store_true", help="skip elemental references and formation energies")
    p.add_argument("--max-formation-energy", type=float, default=0.0, help="threshold filter, eV/atom (default 0)")
    p.add_argument("--competing-phases", default=None, metavar="PATH",
                   help="known phases (CIF, folder/zip of CIFs, extxyz), relaxed with the same MLFF: adds energy_above_hull")
    p.add_argument("--max-e-above-hull", type=float, default=None, metavar="E",
                   help="with --competing-phases: also require energy above hull <= E eV/atom to pass the filter")
    p.add_argument("--reference-cache", default=None, help="JSON cache of elemental reference energies (default ~/.cache/dosmatgen)")
    p.set_defaults(func=cmd_relax)


def build_mlff(args):
    from dosmatgen.relax.mlff import get_mlff

    opts = {}
    name = args.mlff.lower()
    if name in ("chgnet", "orb", "sevenn"):
        opts["device"] = args.device
    if name == "orb":
        opts["weights_path"] = args.mlff_weights
        opts["allow_download"] = args.mlff_allow_download
        if args.mlff_model:
            opts["model"] = args.mlff_model
    if name == "sevenn":
        opts["allow_download"] = args.mlff_allow_download
        if args.mlff_model or args.mlff_weights:
            opts["model"] = args.mlff_weights or args.mlff_model
    return get_mlff(name, **opts)


def _read_inputs(paths, stage: str = "sample", targets=None):
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.io.structure_files import iter_structures
    from dosmatgen.runstore.candidates import iter_run_candidates, run_root

    ids, crystals, unreadable = [], [], []
    for path in paths:
        if not Path(path).exists():
            raise InvalidRecordError("input does not exist", file=str(path))
        items = iter_run_candidates(path, stage, targets) if run_root(path) is not None else iter_structures(path)
        for rid, item in items:
            if isinstance(item, InvalidRecordError):
                unreadable.append((rid, str(item)))
            else:
                ids.append(rid)
                crystals.append(item.with_metadata(id=rid))
    seen: dict[str, int] = {}
    unique = []
    for rid in ids:  # ids from several inputs may clash
        seen[rid] = seen.get(rid, 0) + 1
        unique.append(rid if seen[rid] == 1 else f"{rid}#{seen[rid]}")
    return unique, crystals, unreadable


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def cmd_relax(args) -> int:
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.io.structure_files import write_cif_zip, write_extxyz
    from dosmatgen.io.atomic import atomic_write
    from dosmatgen.relax.batched_fire import RelaxSettings
    from dosmatgen.relax.formation_energy import StabilityFilter
    from dosmatgen.relax.workflow import StabilityWorkflow

    if args.fmax <= 0 or args.max_steps < 0 or args.batch_size < 1:
        raise InvalidRecordError("--fmax must be > 0, --max-steps >= 0 and --batch-size >= 1")
    if args.max_e_above_hull is not None and not args.competing_phases:
        raise InvalidRecordError("--max-e-above-hull needs --competing-phases")
    if args.competing_phases and args.no_formation_energy:
        raise InvalidRecordError("--competing-phases needs the elemental references: drop --no-formation-energy")
    if args.competing_phases and not Path(args.competing_phases).exists():
        raise InvalidRecordError("competing phases: no such file or folder", file=str(args.competing_phases))
    ids, crystals, unreadable = _read_inputs(args.inputs, args.stage, args.target)
    if not ids and not unreadable:
        raise InvalidRecordError("no structures to relax in " + ", ".join(map(str, args.inputs)))
    mlff = build_mlff(args)
    settings = RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size, optimizer=args.optimizer)
    workflow = StabilityWorkflow(mlff, settings, formation_energy=not args.no_formation_energy,
                                 references_cache=args.reference_cache, competing_phases=args.competing_phases)
    relaxed = workflow.run(crystals)
    relaxer, results = workflow.relaxer, relaxed.results
    e_form, e_hull = relaxed.formation_energy, relaxed.energy_above_hull
    reference_note, competing_note = relaxed.reference_note, relaxed.competing_note
    stability = StabilityFilter(max_formation_energy=args.max_formation_energy, max_energy_above_hull=args.max_e_above_hull)

    rows = []
    for rid, r, (ef0, ef1), eh in zip(ids, results, e_form, e_hull):
        row = r.summary()
        row["id"] = rid
        row["formation_energy_initial"] = ef0
        row["formation_energy_relaxed"] = ef1
        if args.competing_phases:
            row["energy_above_hull"] = eh
        row["passes_filter"] = (bool(r.ok and stability.passes(ef1, eh if args.competing_phases else None))
                                if not args.no_formation_energy else None)
        rows.append(row)
    for rid, msg in unreadable:
        rows.append({"id": rid, "status": "unreadable", "reason": msg})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok = [(rid, r.relaxed) for rid, r in zip(ids, results) if r.ok]
    if ok:
        write_extxyz(out / "relaxed.extxyz", [c for _, c in ok], [rid for rid, _ in ok])
        write_cif_zip(out / "relaxed_cif.zip", [c for _, c in ok], [rid for rid, _ in ok])
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(out / "relax_table.csv") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})
    meta = {
        "mlff": mlff.cache_key,
        "fmax": args.fmax,
        "optimizer": args.optimizer,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "mlff_calls": relaxer.n_calls,
        "seconds": round(relaxer.wall_seconds, 2),
        "max_formation_energy": args.max_formation_energy,
        "reference_note": reference_note,
        "competing_phases": competing_note or None,
        "max_energy_above_hull": args.max_e_above_hull,
        "rows": [{k: _clean(v) for k, v in row.items()} for row in rows],
    }
    with atomic_write(out / "relax_table.json") as fh:
        fh.write(json.dumps(meta, indent=1))

    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    passed = sum(1 for row in rows if row.get("passes_filter"))
    print(f"relaxed {len(ok)}/{len(rows)} structures with {mlff.cache_key} in {relaxer.n_calls} MLFF calls "
          f"({relaxer.wall_seconds:.1f} s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if not args.no_formation_energy:
        print(f"formation energy <= {args.max_formation_energy} eV/atom: {passed}")
    if reference_note:
        print(f"note: {reference_note}")
    if competing_note:
        print(f"energy above hull: {competing_note}")
    print(f"wrote {out}/relax_table.csv, relax_table.json" + (", relaxed.extxyz, relaxed_cif.zip" if ok else ""))
    return 0 if ok else 1
