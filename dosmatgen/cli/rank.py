"""``dosmatgen rank``: rank relaxed candidates by the surrogate-predicted DOS of their conditioned site(s), or by
property targets on their predicted total DOS.

    dosmatgen rank CANDIDATES... --target SPEC (--surrogate CKPT | --baseline-store STORE) --out DIR
        [--metric mae|cosine|window] [--window-width W | --window LO HI] [--top K]
        [--sites I,J | --element X | --all-sites] [--site-reduce min|mean]
        [--relax-table CSV] [--max-formation-energy E] [--max-plots N]
    dosmatgen rank CANDIDATES... --surrogate CKPT (--band-gap EV | --dos-ef X | --n-ef X | --tcm 1|2 | --thermoelectric)...
        --out DIR [--only-meeting] [--te-reference REF.cif] [--top K] [--relax-table CSV] [--max-formation-energy E]

Property targets (the DOS-intermediated generation paper's properties and filters; docs/design.md) rank by the
per-atom total DOS that the surrogate predicts: a total-DOS surrogate directly, a site-DOS surrogate as the mean
over the atoms. Candidates that meet every target come first; ``--only-meeting`` keeps the others out of the top K.

CANDIDATES are CIF files, folders or zips of CIFs, or extxyz files. The target is a built-in name, a DOS file or
``STORE.zarr:ID:SITE`` (see ``dosmatgen targets``). The conditioned sites default to the sites of the target's
reference element (e.g. Ni for target-Au3Ni). ``--relax-table`` joins formation energies (eV/atom) and flags by id.
Writes ``DIR/ranked.csv`` and ``DIR/ranked.md`` (top K), ``DIR/all_candidates.csv`` and, for the first
``--max-plots`` candidates, ``DIR/plots/rank<k>_<id>.{png,svg}`` (target vs surrogate at the best site).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from dosmatgen.cli.property_args import add_property_target_arguments, property_targets_from_args


def add_site_selection_arguments(p: argparse.ArgumentParser) -> None:
    """``--sites``, ``--element``, ``--all-sites``, ``--site-reduce`` (shared with ``dosmatgen dft``)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sites", default=None, metavar="I,J", help="conditioned site indices (0-based), e.g. 0 or 0,3")
    g.add_argument("--element", default=None, help="conditioned sites = the sites of this element (default: the target's reference element)")
    g.add_argument("--all-sites", action="store_true", help="every site is a candidate for the conditioned site")
    p.add_argument("--site-reduce", choices=("min", "mean"), default="min",
                   help="candidate distance = min (best site, default) or mean over its selected sites")


def site_selection_from_args(args: argparse.Namespace, target):
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.ranking.sites import SiteSelection

    indices = None
    if args.sites is not None:
        try:
            indices = [int(s) for s in args.sites.split(",") if s.strip()]
        except ValueError:
            raise InvalidRecordError(f"--sites expects comma-separated integers, got {args.sites!r}") from None
    return SiteSelection.for_target(target, indices=indices, element=args.element, all_sites=args.all_sites,
                                    reduce=args.site_reduce)  # fmt: skip


def add_predictor_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--surrogate", default=None, metavar="CKPT",
                   help="surrogate checkpoint (dosmatgen surrogate train): site-DOS for --target; site- or total-DOS for property targets")
    g.add_argument("--baseline-store", default=None, metavar="STORE",
                   help="use the per-element mean site DOS of this dataset store (.zarr) instead of a surrogate")
    p.add_argument("--device", default="cpu", help="torch device of the surrogate (default cpu)")


def predictor_from_args(args: argparse.Namespace):
    """The site-DOS predictor named by ``--surrogate`` / ``--baseline-store``, or None when neither is given."""
    from dosmatgen.ranking.predictors import PerElementMeanSiteDOS, SurrogateSiteDOS

    if getattr(args, "surrogate", None):
        return SurrogateSiteDOS(args.surrogate, device=args.device)
    if getattr(args, "baseline_store", None):
        return PerElementMeanSiteDOS(args.baseline_store)
    return None


def register(subparsers) -> None:
    from dosmatgen.ranking.distance import METRICS

    p = subparsers.add_parser("rank", help="rank relaxed candidates by surrogate DOS distance to a target",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("candidates", nargs="+", metavar="CANDIDATES", help="CIF files, folders/zips of CIFs, extxyz")
    p.add_argument("--target", default=None, help="target site DOS: built-in name, DOS file, or STORE.zarr:ID:SITE (or give property targets)")
    add_predictor_arguments(p, required=True)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--metric", choices=METRICS, default="mae", help="distance (default mae on scaled features)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--window-width", type=float, default=None, metavar="W", help="window metric: Gaussian weight exp(-((E-C)/W)^2), eV")
    w.add_argument("--window", type=float, nargs=2, default=None, metavar=("LO", "HI"), help="window metric: hard window, eV")
    p.add_argument("--window-center", type=float, default=0.0, metavar="C", help="centre of the Gaussian window, eV (default 0 = E_F)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="keep the K closest candidates (default 10)")
    add_site_selection_arguments(p)
    p.add_argument("--relax-table", default=None, metavar="CSV", help="relaxation table: id, formation energy (eV/atom), flags")
    p.add_argument("--id-column", default="id", help="id column of the relaxation table (default id)")
    p.add_argument("--fe-column", default=None, help="formation-energy column of the relaxation table (default: auto)")
    p.add_argument("--max-formation-energy", type=float, default=None, metavar="E", help="exclude candidates above E eV/atom")
    p.add_argument("--max-plots", type=int, default=10, help="plot target vs surrogate for this many top candidates (default 10)")
    add_property_target_arguments(p, "reference thermoelectric (CIF) whose total DOS (dataset record, else the surrogate) "
                                     "the candidates must resemble (cosine > 0.9)")
    p.add_argument("--only-meeting", action="store_true", help="property targets: the top K holds only candidates that meet every target")
    p.set_defaults(func=run_rank)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "_", name)[:100]


def _load(args: argparse.Namespace):
    from dosmatgen.ranking.candidates import join_relaxation_table, load_candidates, read_relaxation_table

    candidates, errors = load_candidates(args.candidates)
    for err in errors:
        print(f"skipped (invalid input): {err}", file=sys.stderr)
    if args.relax_table:
        candidates = join_relaxation_table(
            candidates, read_relaxation_table(args.relax_table, id_column=args.id_column, formation_energy_column=args.fe_column)
        )
    return candidates, errors


def run_rank(args: argparse.Namespace) -> int:
    from dosmatgen.errors import InvalidRecordError

    targets = property_targets_from_args(args)
    if targets is not None and args.target is not None:
        raise InvalidRecordError("give either --target (rank by the site DOS) or property targets (--band-gap, --dos-ef, "
                                 "--n-ef, --tcm, --thermoelectric), not both")
    if targets is None and args.target is None:
        raise InvalidRecordError("nothing to rank by: give --target (a site DOS) or property targets (--band-gap, --dos-ef, "
                                 "--n-ef, --tcm, --thermoelectric)")
    if targets is not None:
        return run_property_rank(args, targets)
    if args.te_reference is not None or args.only_meeting:
        raise InvalidRecordError("--te-reference and --only-meeting apply to property targets only")
    return run_site_rank(args)


def run_property_rank(args: argparse.Namespace, targets) -> int:
    from dosmatgen.design.total_dos import SurrogateTotalDOS
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.plots.design_dos import plot_design_dos
    from dosmatgen.ranking.property_rank import rank_by_properties
    from dosmatgen.ranking.property_table import write_property_tables

    if args.surrogate is None:
        raise InvalidRecordError("property targets rank by the predicted total DOS: give --surrogate CKPT "
                                 "(--baseline-store ranks site DOS only)")
    if args.thermoelectric is False and args.te_reference is not None:
        raise InvalidRecordError("--te-reference needs --thermoelectric")
    predict = SurrogateTotalDOS(args.surrogate, device=args.device)
    te_reference = te_name = None
    if args.te_reference is not None:
        from dosmatgen.design.like import reference_dos

        ref = reference_dos(args.te_reference, surrogate=args.surrogate, device=args.device)
        te_reference, te_name = ref.dos, f"{ref.label} ({ref.source})"
    candidates, errors = _load(args)
    result = rank_by_properties(candidates, predict, targets, te_reference=te_reference, top_k=args.top,
                                max_formation_energy=args.max_formation_energy, only_meeting=args.only_meeting,
                                predictor_name=f"{args.surrogate}: {predict.route}", te_reference_name=te_name)  # fmt: skip
    paths = write_property_tables(result, args.out)
    (args.out / "ranking.json").write_text(json.dumps({
        "targets": targets.as_dict(), "predictor": result.predictor, "te_reference": te_name, "top_k": args.top,
        "only_meeting": args.only_meeting, "n_candidates": len(candidates), "n_scored": result.n_scored,
        "n_meeting": result.n_meeting, "n_unreadable": len(errors), "inputs": [str(c) for c in args.candidates],
    }, indent=2))  # fmt: skip
    top = result.top[: max(args.max_plots, 0)]
    if top:
        import numpy as np

        plot_design_dos(np.stack([r.predicted for r in top]), targets, args.out / "plots" / "top_candidates_dos",
                        what=f"surrogate DOS of the top {len(top)}")
    print(f"ranked {result.n_scored} of {len(candidates)} candidates ({len(errors)} unreadable) by {targets.describe()}; "
          f"{result.n_meeting} meet every target; top {len(result.top)} in {paths['csv']} and {paths['md']}")  # fmt: skip
    for r in result.top[:5]:
        p = r.properties
        print(f"  {r.rank:3d}  {r.candidate.id}  {r.candidate.crystal.formula}  score {r.score:.4f}  "
              f"{'meets' if r.meets else 'misses'}  gap {p['band_gap']:.2f} eV  DOS(E_F) {p['dos_ef']:.3f}  N(E_F) {p['n_ef']:.2f}")  # fmt: skip
    return 0


def run_site_rank(args: argparse.Namespace) -> int:
    from dosmatgen.ranking.distance import DistanceSpec
    from dosmatgen.ranking.predictors import predictor_scaler
    from dosmatgen.ranking.rank import rank_candidates
    from dosmatgen.ranking.table import write_ranked_tables
    from dosmatgen.targets import resolve_target

    spec = DistanceSpec(args.metric, window_width=args.window_width,
                        window_range=tuple(args.window) if args.window else None, window_center=args.window_center)  # fmt: skip
    if args.metric != "window" and (args.window_width is not None or args.window is not None):
        print("note: --window/--window-width are used by --metric window only", file=sys.stderr)
    target = resolve_target(args.target)
    selection = site_selection_from_args(args, target)
    predictor = predictor_from_args(args)
    candidates, errors = _load(args)
    result = rank_candidates(
        candidates, target.features, predictor, spec=spec, selection=selection, top_k=args.top,
        scaler=predictor_scaler(predictor), max_formation_energy=args.max_formation_energy,
        target_name=target.name, predictor_name=predictor.describe(),
    )  # fmt: skip
    paths = write_ranked_tables(result, args.out)
    (args.out / "ranking.json").write_text(json.dumps({
        "target": target.name, "metric": result.metric_text(), "distance": spec.to_dict(), "sites": selection.describe(),
        "predictor": predictor.describe(), "top_k": args.top, "n_candidates": len(candidates), "n_scored": result.n_scored,
        "n_unreadable": len(errors), "inputs": [str(c) for c in args.candidates],
    }, indent=2))  # fmt: skip
    if args.max_plots > 0 and result.top:
        from dosmatgen.plots.surrogate_comparison import plot_target_surrogate_dft

        for r in result.top[: args.max_plots]:
            c = r.candidate
            title = f"#{r.rank} {c.id}: {c.crystal.formula}, site {r.best_site} ({c.crystal.symbols[r.best_site]})"
            plot_target_surrogate_dft(target.features, r.predicted, None, args.out / "plots" / f"rank{r.rank:03d}_{_safe(c.id)}",
                                      title=title)  # fmt: skip
    print(f"ranked {result.n_scored} of {len(candidates)} candidates ({len(errors)} unreadable) by {result.metric_text()} "
          f"on {selection.describe()}; top {len(result.top)} in {paths['csv']} and {paths['md']}")  # fmt: skip
    for r in result.top[:5]:
        print(f"  {r.rank:3d}  {r.candidate.id}  {r.candidate.crystal.formula}  site {r.best_site}  distance {r.distance:.4f}")
    return 0
