"""``dosmatgen targets``: list and show the built-in demo targets (or any target specification)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("targets", help="list and plot target DOS (built-in demo targets, files, dataset sites)")
    tsub = p.add_subparsers(dest="targets_command", metavar="ACTION")
    tsub.required = True
    lp = tsub.add_parser("list", help="list the built-in demo targets")
    lp.set_defaults(func=_list)
    sp = tsub.add_parser("show", help="describe a target and write a plot of its DOS")
    sp.add_argument("target", help="built-in name, DOS file (.csv/.json/.npy) or STORE.zarr:ID:SITE")
    sp.add_argument("--out", default=None, help="plot path (.png, an .svg is written beside it); default TARGET.png")
    sp.add_argument("--efermi", type=float, default=0.0, help="Fermi level to subtract when a DOS file has absolute energies")
    sp.set_defaults(func=_show)


def _list(args) -> int:
    from dosmatgen.targets import list_targets, load_builtin_target

    for name in list_targets():
        t = load_builtin_target(name)
        print(f"{name:16s} {t.description}")
    return 0


def _show(args) -> int:
    import numpy as np

    from dosmatgen.dos.grid import SITE_GRID
    from dosmatgen.targets import plot_target, resolve_target

    t = resolve_target(args.target, efermi=args.efermi)
    print(f"name:        {t.name}")
    print(f"description: {t.description}")
    if t.reference is not None:
        print(f"reference:   {t.reference.formula}, {t.reference.num_atoms} atoms, sites {list(t.reference_sites)}")
    e = SITE_GRID.energies
    occupied = float(t.features[e <= 0].sum() * SITE_GRID.step)
    at_ef = float(np.interp(0.0, e, t.features))
    print(f"features:    {SITE_GRID.n} points on [{SITE_GRID.emin}, {SITE_GRID.emax}] eV; "
          f"integral below E_F {occupied:.2f} states; DOS(E_F) {at_ef:.3f} states/eV")
    out = args.out or f"{t.name.replace(':', '_')}.png"
    for p in plot_target(t, out):
        print(f"wrote {p}")
    return 0
