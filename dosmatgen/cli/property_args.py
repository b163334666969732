"""Command-line flags of property targets (``dosmatgen design``, ``dosmatgen rank``) ->
:class:`dosmatgen.dos.property_targets.PropertyTargets`."""

from __future__ import annotations

import argparse


def add_property_target_arguments(p: argparse.ArgumentParser, te_reference_help: str) -> None:
    t = p.add_argument_group("property targets (DOS-derived properties of the per-atom total DOS)")
    t.add_argument("--band-gap", type=float, default=None, metavar="EV", help="band gap (paper Algorithm 1), eV, >= 0")
    t.add_argument("--dos-ef", type=float, default=None, metavar="X", help="DOS(E_F), states/eV/atom, >= 0")
    t.add_argument("--n-ef", type=float, default=None, metavar="X", help="N(E_F), the paper's Eq. 6 bin sum, >= 0")
    t.add_argument("--tcm", type=int, default=None, choices=(1, 2), help="transparent conductor of type 1 or 2")
    t.add_argument("--thermoelectric", action="store_true", help="thermoelectric filter (gap 0.1-1 eV, DOS(E_F) = 0)")
    t.add_argument("--te-reference", default=None, metavar="REF.cif", help=te_reference_help)
    t.add_argument("--rel-tol", type=float, default=0.10, help="relative tolerance of a non-zero target (default 0.10)")
    t.add_argument("--zero-abs-tol", type=float, default=0.10, help="absolute tolerance of a zero target (default 0.10)")


def property_targets_from_args(args: argparse.Namespace):
    """The PropertyTargets of the flags, or None when no target flag was given (tolerances alone are no target)."""
    from dosmatgen.dos.property_targets import PropertyTargets

    given = any(getattr(args, k) is not None for k in ("band_gap", "dos_ef", "n_ef", "tcm")) or args.thermoelectric
    if not given:
        return None
    return PropertyTargets(band_gap=args.band_gap, dos_ef=args.dos_ef, n_ef=args.n_ef, tcm=args.tcm,
                           thermoelectric=args.thermoelectric, rel_tol=args.rel_tol, zero_abs_tol=args.zero_abs_tol)
