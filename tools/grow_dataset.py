#!/usr/bin/env python
"""Grow the project's GPAW DOS dataset in the background (issue 7 §1), with the dos-gpaw-v1 settings.

Candidates, at most 8 atoms, elements with Z <= 83, no Tc or Pm, La as the only lanthanide:

* ``perov5-<material_id>``: rows of CDVAE's perov_5 val/test CSVs (source ``cdvae-perov_5``);
* ``mattergen-<path>``: CIFs of MatterGen's data release in ``cifs.zip`` (source ``mattergen-data-release``);
  of an ``X``/``X_symmetrized`` pair only ``X`` is used (the engine symmetrizes anyway);
* decorated prototypes relaxed with CHGNet (ASE FIRE + FrechetCellFilter, fmax 0.05 eV/Å, at most 300 steps;
  source ``prototype-chgnet-relaxed``): B2, rocksalt, zincblende, fluorite, antifluorite, L1_2, rutile, cubic
  perovskite, A15, C15, cuprite, 2H, K2NiF4, chalcopyrite, marcasite, anatase, C16, Ni2In, half-Heusler, Heusler,
  L1_0, wurtzite and NiAs, with charge-balanced or intermetallic element choices (see ``prototype_specs``).

Ids already in dos-gpaw-v1 (or in its failures.jsonl) are left out; prototypes are also matched regardless of
the order of the elements in the id (``B2-AlZn`` = ``B2-ZnAl``). Candidates of 6-8 atoms run first, then the
others smallest cells first, then the perov_5 rows, and 6-8-atom cells made mostly of Mn/Fe/Co/Ni last (they
are the slowest; see ``order_candidates``).

Everything lands in OUT (default /work/grow/gpaw-v2, outside the repository) through
``dosmatgen.dft.compute.compute_dos_dataset``: ``records/<id>.npz``, ``failures.jsonl``, ``work/<id>/``.
Also in OUT: ``candidates.json`` (the candidate list, built once), ``relaxed_prototypes.jsonl`` (CHGNet cache),
``grow.log`` (one line per structure) and ``status.json`` (counts and rate). The run is resumable: start it
again with the same OUT and it continues where it stopped.

Usage (one core, low priority)::

    nohup nice -n 10 python tools/grow_dataset.py --out /work/grow/gpaw-v2 > /work/grow/grow.out 2>&1 &
    python tools/grow_dataset.py --out /work/grow/gpaw-v2 --dry-run    # candidate counts only
    # two cores: two processes on the same OUT, disjoint candidates (--worker 0/2 and --worker 1/2); each writes
    # its records into OUT/worker-I (the DFT driver locks its folder); `dosmatgen data build` takes all folders

This is a maintainer tool: it reads the shared data folder given by --shared; the library and tests never do.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

# one core for everything this process does (CHGNet/torch, numpy) and for the GPAW workers it starts
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from dosmatgen.crystal import Crystal  # noqa: E402

MAX_ATOMS = 8
LANTHANIDES_EXCEPT_LA = set(range(58, 72))
EXCLUDED_Z = {43, 61} | LANTHANIDES_EXCEPT_LA
PROTOTYPE_SOURCE = "prototype-chgnet-relaxed"


def allowed(z: np.ndarray) -> bool:
    """Elements allowed in the dataset: Z <= 83, not Tc or Pm, no lanthanide but La."""
    return bool(np.all((z >= 1) & (z <= 83))) and not (set(int(x) for x in z) & EXCLUDED_Z)


# ------------------------------------------------------------------------------------------- prototypes
def _radius(symbol: str) -> float:
    from ase.data import atomic_numbers, covalent_radii

    return float(covalent_radii[atomic_numbers[symbol]])


def _fcc_primitive(a: float) -> np.ndarray:
    return 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)


def build_prototype(kind: str, elements: tuple[str, ...]) -> tuple[str, Crystal]:
    """``(id, unrelaxed crystal)`` of a decorated prototype; lattice guessed from covalent radii."""
    from ase.data import atomic_numbers as Z

    if kind == "B2":  # CsCl: A (0,0,0), B (1/2,1/2,1/2); nearest neighbours a*sqrt(3)/2
        a_el, b_el = elements
        a = 2 * (_radius(a_el) + _radius(b_el)) / np.sqrt(3)
        return f"B2-{a_el}{b_el}", Crystal([Z[a_el], Z[b_el]], [[0, 0, 0], [0.5, 0.5, 0.5]], a * np.eye(3))
    if kind == "rocksalt":  # A (0,0,0), B (1/2,1/2,1/2) of the fcc primitive cell; neighbours at a/2
        a_el, b_el = elements
        a = 2 * (_radius(a_el) + _radius(b_el))
        return f"rocksalt-{a_el}{b_el}", Crystal([Z[a_el], Z[b_el]], [[0, 0, 0], [0.5, 0.5, 0.5]], _fcc_primitive(a))
    if kind == "zincblende":  # A (0,0,0), B (1/4,1/4,1/4); neighbours at a*sqrt(3)/4
        a_el, b_el = elements
        a = 4 * (_radius(a_el) + _radius(b_el)) / np.sqrt(3)
        return f"zincblende-{a_el}{b_el}", Crystal([Z[a_el], Z[b_el]], [[0, 0, 0], [0.25] * 3], _fcc_primitive(a))
    if kind in ("fluorite", "antifluorite"):  # A on 4a, B on 8c (fluorite AB2) or A on 8c (antifluorite A2B)
        a_el, b_el = elements
        a = 4 * (_radius(a_el) + _radius(b_el)) / np.sqrt(3)
        if kind == "fluorite":
            return f"fluorite-{a_el}{b_el}2", Crystal([Z[a_el], Z[b_el], Z[b_el]], [[0, 0, 0], [0.25] * 3, [0.75] * 3], _fcc_primitive(a))
        return f"antifluorite-{a_el}2{b_el}", Crystal([Z[b_el], Z[a_el], Z[a_el]], [[0, 0, 0], [0.25] * 3, [0.75] * 3], _fcc_primitive(a))
    if kind == "L12":  # A3B: B (0,0,0), A on the face centres; neighbours at a/sqrt(2)
        a_el, b_el = elements
        a = np.sqrt(2) * (_radius(a_el) + _radius(b_el))
        frac = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
        return f"L12-{a_el}3{b_el}", Crystal([Z[b_el]] + [Z[a_el]] * 3, frac, a * np.eye(3))
    if kind == "rutile":  # AB2: A (0,0,0),(1/2,1/2,1/2); B (u,u,0),(-u,-u,0),(1/2+u,1/2-u,1/2),(1/2-u,1/2+u,1/2)
        a_el, b_el = elements
        d = _radius(a_el) + _radius(b_el)
        a, c, u = 2.3 * d, 1.5 * d, 0.305
        frac = [[0, 0, 0], [0.5, 0.5, 0.5], [u, u, 0], [1 - u, 1 - u, 0], [0.5 + u, 0.5 - u, 0.5], [0.5 - u, 0.5 + u, 0.5]]
        return f"rutile-{a_el}{b_el}2", Crystal([Z[a_el]] * 2 + [Z[b_el]] * 4, frac, np.diag([a, a, c]))
    if kind == "perovskite":  # ABX3: B (0,0,0), A (1/2,1/2,1/2), X at the edge centres; B-X = a/2
        a_el, b_el, x_el = elements
        a = max(2 * (_radius(b_el) + _radius(x_el)), np.sqrt(2) * (_radius(a_el) + _radius(x_el)))
        frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]
        return f"perovskite-{a_el}{b_el}{x_el}3", Crystal([Z[b_el], Z[a_el]] + [Z[x_el]] * 3, frac, a * np.eye(3))
    if kind == "A15":  # A3B (Cr3Si / Nb3Sn), Pm-3n: B (0,0,0),(1/2,1/2,1/2); A chains on the faces; A-B = a*sqrt(5)/4
        a_el, b_el = elements
        a = 4 * (_radius(a_el) + _radius(b_el)) / np.sqrt(5)
        frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0, 0.5], [0.75, 0, 0.5], [0.5, 0.25, 0], [0.5, 0.75, 0],
                [0, 0.5, 0.25], [0, 0.5, 0.75]]  # fmt: skip
        return f"A15-{a_el}3{b_el}", Crystal([Z[b_el]] * 2 + [Z[a_el]] * 6, frac, a * np.eye(3))
    if kind == "cuprite":  # A2X (Cu2O), Pn-3m: X (0,0,0),(1/2,1/2,1/2); A at the four (1/4,1/4,1/4)-type sites
        a_el, x_el = elements
        a = 4 * (_radius(a_el) + _radius(x_el)) / np.sqrt(3)
        frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
        return f"cuprite-{a_el}2{x_el}", Crystal([Z[x_el]] * 2 + [Z[a_el]] * 4, frac, a * np.eye(3))
    if kind == "C15":  # AB2 Laves (MgCu2), Fd-3m origin 2: A 8a (1/8,1/8,1/8), B 16d (1/2,1/2,1/2); A-B = a*sqrt(11)/8
        a_el, b_el = elements
        a = 8 * (_radius(a_el) + _radius(b_el)) / np.sqrt(11)
        return f"C15-{a_el}{b_el}2", _spacegroup_primitive([a_el, b_el], [(1 / 8,) * 3, (0.5,) * 3], 227, [a] * 3 + [90] * 3,
                                                           setting=2)
    if kind == "2H":  # MX2 (2H-MoS2), P6_3/mmc: M 2c (1/3,2/3,1/4), X 4f (1/3,2/3,0.621); M-X ~ r_M + r_X
        m_el, x_el = elements
        d = _radius(m_el) + _radius(x_el)
        a, c = 1.32 * d, 5.1 * d
        return f"2H-{m_el}{x_el}2", _spacegroup_primitive([m_el, x_el], [(1 / 3, 2 / 3, 0.25), (1 / 3, 2 / 3, 0.621)], 194,
                                                           [a, a, c, 90, 90, 120])  # fmt: skip
    if kind == "K2NiF4":  # A2BX4 (Ruddlesden-Popper n=1), I4/mmm: B 2a, A 4e z=0.355, X 4c and 4e z=0.155
        a_el, b_el, x_el = elements
        a = 2 * (_radius(b_el) + _radius(x_el))
        return (f"K2NiF4-{a_el}2{b_el}{x_el}4",
                _spacegroup_primitive([b_el, a_el, x_el, x_el], [(0, 0, 0), (0, 0, 0.355), (0, 0.5, 0), (0, 0, 0.155)], 139,
                                      [a, a, 3.3 * a, 90, 90, 90]))  # fmt: skip
    if kind == "chalcopyrite":  # ABX2 (CuFeS2), I-42d: A 4a (0,0,0), B 4b (0,0,1/2), X 8d (1/4,1/4,1/8); c = 2a
        a_el, b_el, x_el = elements
        a = 4 * (0.5 * (_radius(a_el) + _radius(b_el)) + _radius(x_el)) / np.sqrt(3)
        return (f"chalcopyrite-{a_el}{b_el}{x_el}2",
                _spacegroup_primitive([a_el, b_el, x_el], [(0, 0, 0), (0, 0, 0.5), (0.25, 0.25, 0.125)], 122,
                                      [a, a, 2 * a, 90, 90, 90]))  # fmt: skip
    if kind == "marcasite":  # AX2 (FeS2), Pnnm: A 2a (0,0,0), X 4g (0.200,0.378,0); FeS2 a,b,c = 4.44,5.42,3.39 at d 2.25
        a_el, x_el = elements
        f = (_radius(a_el) + _radius(x_el)) / 2.25
        return (f"marcasite-{a_el}{x_el}2",
                _spacegroup_primitive([a_el, x_el], [(0, 0, 0), (0.200, 0.378, 0)], 58, [4.44 * f, 5.42 * f, 3.39 * f, 90, 90, 90]))
    if kind == "anatase":  # AO2, I4_1/amd origin 1: A 4a (0,0,0), O 8e (0,0,0.208); TiO2 a,c = 3.78,9.51 at d 1.95
        a_el, x_el = elements
        f = (_radius(a_el) + _radius(x_el)) / 1.95
        return (f"anatase-{a_el}{x_el}2",
                _spacegroup_primitive([a_el, x_el], [(0, 0, 0), (0, 0, 0.208)], 141, [3.78 * f, 3.78 * f, 9.51 * f, 90, 90, 90]))
    if kind == "C16":  # A2B (Al2Cu), I4/mcm: B 4a (0,0,1/4), A 8h (0.158,0.658,0); Al2Cu a,c = 6.07,4.87 at d 2.59
        a_el, b_el = elements
        f = (_radius(a_el) + _radius(b_el)) / 2.59
        return (f"C16-{a_el}2{b_el}",
                _spacegroup_primitive([b_el, a_el], [(0, 0, 0.25), (0.158, 0.658, 0)], 140, [6.07 * f, 6.07 * f, 4.87 * f, 90, 90, 90]))
    if kind == "Ni2In":  # A2B, P6_3/mmc: A 2a (0,0,0) and 2d (1/3,2/3,3/4), B 2c (1/3,2/3,1/4); a,c = 4.18,5.13 at d 2.6
        a_el, b_el = elements
        f = (_radius(a_el) + _radius(b_el)) / 2.6
        return (f"Ni2In-{a_el}2{b_el}",
                _spacegroup_primitive([a_el, a_el, b_el], [(0, 0, 0), (1 / 3, 2 / 3, 0.75), (1 / 3, 2 / 3, 0.25)], 194,
                                      [4.18 * f, 4.18 * f, 5.13 * f, 90, 90, 120]))  # fmt: skip
    if kind in ("fcc", "bcc", "hcp"):  # elemental allotropes: nearest neighbours at twice the covalent radius
        (el,) = elements
        d = 2 * _radius(el)
        if kind == "fcc":
            return f"fcc-{el}", Crystal([Z[el]], [[0, 0, 0]], _fcc_primitive(np.sqrt(2) * d))
        if kind == "bcc":
            a = 2 * d / np.sqrt(3)
            return f"bcc-{el}", Crystal([Z[el]], [[0, 0, 0]], 0.5 * a * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float))
        return f"hcp-{el}", _spacegroup_primitive([el], [(1 / 3, 2 / 3, 0.25)], 194, [d, d, d * np.sqrt(8 / 3), 90, 90, 120])
    if kind == "halfHeusler":  # XYZ (C1_b, TiNiSn), F-43m: Z 4a (0,0,0), X 4b (1/2,1/2,1/2), Y 4c (1/4,1/4,1/4)
        x_el, y_el, z_el = elements  # X and Z form a rocksalt lattice, Y fills half its tetrahedral holes
        a = 4 * (_radius(y_el) + 0.5 * (_radius(x_el) + _radius(z_el))) / np.sqrt(3)
        return (f"halfHeusler-{x_el}{y_el}{z_el}",
                Crystal([Z[z_el], Z[x_el], Z[y_el]], [[0, 0, 0], [0.5] * 3, [0.25] * 3], _fcc_primitive(a)))
    if kind == "Heusler":  # X2YZ (L2_1, Cu2MnAl), Fm-3m: Z 4a, Y 4b, X 8c (1/4,1/4,1/4),(3/4,3/4,3/4); X-Y = a*sqrt(3)/4
        x_el, y_el, z_el = elements
        a = 4 * (_radius(x_el) + 0.5 * (_radius(y_el) + _radius(z_el))) / np.sqrt(3)
        return (f"Heusler-{x_el}2{y_el}{z_el}",
                Crystal([Z[z_el], Z[y_el], Z[x_el], Z[x_el]], [[0, 0, 0], [0.5] * 3, [0.25] * 3, [0.75] * 3], _fcc_primitive(a)))
    if kind == "L10":  # AB (CuAu), P4/mmm: A (0,0,0), B (1/2,1/2,1/2); ideal fcc stacking a = d, c = d*sqrt(2)
        a_el, b_el = elements
        d = _radius(a_el) + _radius(b_el)
        return f"L10-{a_el}{b_el}", Crystal([Z[a_el], Z[b_el]], [[0, 0, 0], [0.5, 0.5, 0.5]], np.diag([d, d, d * np.sqrt(2)]))
    if kind == "wurtzite":  # AB, P6_3mc: A 2b (1/3,2/3,0), B 2b (1/3,2/3,3/8); ideal c/a = sqrt(8/3), A-B = 3c/8
        a_el, b_el = elements
        c = 8 * (_radius(a_el) + _radius(b_el)) / 3
        a = c / np.sqrt(8 / 3)
        return (f"wurtzite-{a_el}{b_el}",
                _spacegroup_primitive([a_el, b_el], [(1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, 0.375)], 186, [a, a, c, 90, 90, 120]))
    if kind == "NiAs":  # AX (B8_1), P6_3/mmc: A 2a (0,0,0), X 2c (1/3,2/3,1/4); NiAs a,c = 3.62,5.03 at d 2.43
        a_el, x_el = elements
        f = (_radius(a_el) + _radius(x_el)) / 2.43
        return (f"NiAs-{a_el}{x_el}",
                _spacegroup_primitive([a_el, x_el], [(0, 0, 0), (1 / 3, 2 / 3, 0.25)], 194, [3.62 * f, 3.62 * f, 5.03 * f, 90, 90, 120]))
    raise ValueError(kind)


def _spacegroup_primitive(symbols: list[str], basis: list[tuple[float, ...]], spacegroup: int, cellpar: list[float],
                          setting: int = 1) -> Crystal:
    """The primitive cell of a structure given by Wyckoff positions (ASE's spacegroup module, then pymatgen);
    ``setting`` 2 is origin choice 2 of the centrosymmetric groups."""
    from ase.spacegroup import crystal as sg_crystal
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = sg_crystal(symbols, basis=basis, spacegroup=spacegroup, cellpar=cellpar, setting=setting)
    primitive = AseAtomsAdaptor.get_structure(atoms).get_primitive_structure()
    return Crystal.from_pymatgen(primitive)


def prototype_specs() -> list[tuple[str, tuple[str, ...]]]:
    """Decorations with sensible chemistry: charge-balanced ionic compounds and intermetallics."""
    specs: list[tuple[str, tuple[str, ...]]] = []
    intermetallic = ["Al", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Zr", "Nb", "Mo", "Ru", "Rh",
                     "Pd", "Ag", "In", "Hf", "Ta", "W", "Ir", "Pt", "Au", "Sc", "Y", "Mg"]  # fmt: skip
    specs += [("B2", p) for p in itertools.combinations(intermetallic, 2)]
    specs += [("B2", (a, x)) for a in ("Cs", "Rb", "Tl") for x in ("Cl", "Br", "I")]
    l12 = ["Al", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Zr", "Nb", "Ru", "Rh", "Pd", "Ag",
           "In", "Sn", "Ir", "Pt", "Au"]  # fmt: skip
    specs += [("L12", (a, b)) for a in l12 for b in l12 if a != b]
    specs += [("rocksalt", (a, x)) for a in ("Li", "Na", "K", "Rb", "Cs", "Ag", "Cu", "Tl") for x in ("F", "Cl", "Br", "I")]
    specs += [("rocksalt", (a, x)) for a in ("Mg", "Ca", "Sr", "Ba", "Mn", "Fe", "Co", "Ni", "Zn", "Cd", "Pb", "Sn", "Ge")
              for x in ("O", "S", "Se", "Te")]  # fmt: skip
    specs += [("rocksalt", (a, x)) for a in ("Sc", "Y", "La", "Al", "Ga", "In") for x in ("N", "P", "As", "Sb", "Bi")]
    specs += [("rocksalt", (a, x)) for a in ("Ti", "Zr", "Hf", "V", "Nb", "Ta", "Cr", "Mo", "W") for x in ("C", "N")]
    specs += [("zincblende", (a, x)) for a in ("B", "Al", "Ga", "In") for x in ("N", "P", "As", "Sb")]
    specs += [("zincblende", (a, x)) for a in ("Be", "Mg", "Zn", "Cd", "Hg") for x in ("O", "S", "Se", "Te")]
    specs += [("zincblende", (a, x)) for a in ("Cu", "Ag") for x in ("F", "Cl", "Br", "I")]
    specs += [("zincblende", p) for p in (("Si", "C"), ("Ge", "C"), ("Sn", "C"), ("Si", "Ge"), ("Ge", "Sn"), ("Si", "Sn"))]
    specs += [("fluorite", (a, x)) for a in ("Ca", "Sr", "Ba", "Cd", "Pb", "Hg") for x in ("F", "Cl")]
    specs += [("fluorite", (a, "O")) for a in ("Zr", "Hf", "Ti", "Sn", "Pb", "Ge", "Te")]
    specs += [("fluorite", (a, x)) for a in ("Pt", "Au", "Pd", "Co", "Ni", "Ir", "Rh") for x in ("Al", "Ga", "In", "Si", "Ge", "Sn")]
    specs += [("antifluorite", (a, x)) for a in ("Li", "Na", "K", "Rb") for x in ("O", "S", "Se", "Te")]
    specs += [("antifluorite", ("Mg", x)) for x in ("Si", "Ge", "Sn", "Pb")] + [("antifluorite", ("Be", "C"))]
    specs += [("rutile", (a, "O")) for a in ("Ti", "V", "Cr", "Mn", "Ge", "Sn", "Pb", "Ru", "Os", "Ir", "Nb", "Mo",
                                              "W", "Rh", "Pt", "Te", "Zr", "Hf", "Ta", "Re", "Si")]  # fmt: skip
    specs += [("rutile", (a, "F")) for a in ("Mg", "Mn", "Fe", "Co", "Ni", "Zn", "Cu", "Pd", "Cd", "Ca")]
    specs += [("perovskite", (a, b, "O")) for a in ("Ca", "Sr", "Ba", "Pb")
              for b in ("Ti", "Zr", "Hf", "Sn", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Mo", "Ru", "Rh", "Ir", "Ge")]  # fmt: skip
    specs += [("perovskite", ("La", b, "O")) for b in ("Al", "Ga", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "In")]
    specs += [("perovskite", (a, b, "O")) for a in ("Na", "K", "Rb") for b in ("Nb", "Ta", "V", "Sb")]
    specs += [("perovskite", (a, b, x)) for a in ("K", "Rb", "Cs") for b in ("Mg", "Ca", "Mn", "Fe", "Co", "Ni", "Zn",
              "Cd", "Ge", "Sn", "Pb") for x in ("F", "Cl", "Br", "I")]  # fmt: skip
    # larger primitive cells (6-8 atoms): the dataset has few of them, and the model samples 4-8 atoms
    a15_a = ("Nb", "V", "Ti", "Cr", "Mo", "Ta", "Zr")
    a15_b = ("Sn", "Ge", "Si", "Al", "Ga", "In", "Au", "Pt", "Ir", "Os", "Sb", "As")
    specs += [("A15", (a, b)) for a in a15_a for b in a15_b]
    specs += [("C15", (a, b)) for a in ("Mg", "Ca", "Zr", "Hf", "Ti", "Nb", "Ta", "Sc", "Y", "La")
              for b in ("Al", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "V", "Mo", "W", "Zn")]  # fmt: skip
    specs += [("cuprite", (a, x)) for a in ("Cu", "Ag") for x in ("O", "S", "Se")]
    specs += [("2H", (m, x)) for m in ("Mo", "W", "Nb", "Ta") for x in ("S", "Se", "Te")]
    specs += [("K2NiF4", (a, b, "O")) for a in ("Sr", "Ba", "Ca") for b in ("Ti", "Zr", "Hf", "Sn", "Ru", "Ir", "Mo")]
    specs += [("K2NiF4", ("La", b, "O")) for b in ("Ni", "Co", "Cu")]
    specs += [("K2NiF4", ("K", b, "F")) for b in ("Ni", "Mg", "Zn", "Co")]
    specs += [("chalcopyrite", (a, b, x)) for a in ("Cu", "Ag") for b in ("Al", "Ga", "In", "Fe") for x in ("S", "Se", "Te")]
    specs += [("marcasite", (a, x)) for a in ("Fe", "Co", "Ni", "Ru", "Os") for x in ("S", "Se", "Te", "P", "As", "Sb")]
    specs += [("anatase", (a, "O")) for a in ("Ti", "Zr", "Hf", "Sn", "Ge")]
    specs += [("C16", (a, b)) for a in ("Al", "Ga", "Zr", "Hf", "Fe", "Co", "Ni", "Mn")
              for b in ("Cu", "Ni", "Co", "Fe", "B", "Si", "Ge") if a != b]  # fmt: skip
    specs += [("Ni2In", (a, b)) for a in ("Ni", "Co", "Fe", "Mn", "Cu", "Pd") for b in ("In", "Ga", "Ge", "Sn", "Si", "Al")]
    # half-Heusler thermoelectrics and semiconductors (mostly 18 valence electrons), full Heuslers, L1_0, wurtzite, NiAs
    specs += [("halfHeusler", (x, y, z)) for x in ("Ti", "Zr", "Hf") for y in ("Ni", "Pd", "Pt") for z in ("Sn", "Ge", "Pb")]
    specs += [("halfHeusler", (x, y, z)) for x in ("Ti", "Zr", "Hf") for y in ("Co", "Rh", "Ir") for z in ("Sb", "Bi", "As")]
    specs += [("halfHeusler", (x, y, z)) for x in ("V", "Nb", "Ta") for y in ("Fe", "Ru", "Os") for z in ("Sb", "Bi", "As")]
    specs += [("halfHeusler", (x, y, z)) for x in ("Sc", "Y", "La") for y in ("Ni", "Pd", "Pt") for z in ("Sb", "Bi")]
    specs += [("halfHeusler", (x, y, z)) for x in ("Li", "Na") for y in ("Mg", "Zn") for z in ("N", "P", "As", "Sb")]
    specs += [("Heusler", (x, y, z)) for x in ("Co", "Ni", "Cu", "Fe", "Rh", "Pd") for y in ("Ti", "V", "Mn", "Zr", "Hf")
              for z in ("Al", "Sn")]  # fmt: skip
    specs += [("L10", (a, b)) for a in ("Fe", "Co", "Ni", "Mn", "Cu", "Ti", "V", "Cr") for b in ("Pt", "Pd", "Au")]
    specs += [("wurtzite", (a, x)) for a, x in (("Al", "N"), ("Ga", "N"), ("In", "N"), ("Zn", "O"), ("Zn", "S"), ("Zn", "Se"),
              ("Cd", "S"), ("Cd", "Se"), ("Be", "O"), ("Si", "C"), ("Ag", "I"), ("Mg", "Te"), ("B", "N"), ("Mn", "S"))]  # fmt: skip
    specs += [("NiAs", (a, x)) for a in ("Fe", "Co", "Ni", "Mn", "Cr", "V", "Ti") for x in ("S", "Se", "Te", "As", "Sb")]
    # elemental metals in the fcc, bcc and hcp structures (the one matching dos-gpaw-v1's dcdft ground state is left
    # out, see elemental_ground_state_duplicate), more half-Heuslers, L1_0, rocksalt hydrides and chalcogenides
    metals = ("Li", "Na", "K", "Rb", "Cs", "Be", "Mg", "Ca", "Sr", "Ba", "Al", "Ga", "In", "Tl", "Pb", "Sn", "Sc", "Y",
              "La", "Ti", "Zr", "Hf", "V", "Nb", "Ta", "Cr", "Mo", "W", "Mn", "Fe", "Co", "Ni", "Cu", "Ag", "Au", "Zn",
              "Cd", "Ru", "Rh", "Pd", "Os", "Ir", "Pt", "Re")  # fmt: skip
    specs += [(kind, (el,)) for el in metals for kind in ("fcc", "bcc", "hcp")]
    specs += [("halfHeusler", (x, y, z)) for x in ("V", "Nb", "Ta") for y in ("Co", "Rh", "Ir") for z in ("Sn", "Ge", "Pb")]
    specs += [("halfHeusler", (x, y, z)) for x in ("Sc", "Y", "La") for y in ("Cu", "Ag", "Au") for z in ("Sn", "Pb")]
    specs += [("halfHeusler", (x, y, z)) for x in ("Li", "Na", "K") for y in ("Cd",) for z in ("N", "P", "As", "Sb")]
    specs += [("halfHeusler", ("Li", y, z)) for y in ("Al", "Ga") for z in ("Si", "Ge")]
    specs += [("L10", (a, b)) for a in ("Ti", "Zr", "Hf", "Mn") for b in ("Al", "Ga")]
    specs += [("L10", (a, b)) for a in ("Fe", "Co", "Ni") for b in ("Rh", "Ir")]
    specs += [("rocksalt", (a, "H")) for a in ("Li", "Na", "K", "Rb", "Cs")]
    specs += [("rocksalt", (a, x)) for a in ("Sc", "Y", "La", "Ti", "Zr", "Hf") for x in ("S", "Se", "Te")]
    return specs


def elemental_ground_state_duplicate(crystal: Crystal, shared: Path) -> bool:
    """Whether a one-element candidate matches (pymatgen StructureMatcher) dos-gpaw-v1's structure of that element."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    z = set(int(x) for x in crystal.atomic_numbers)
    if len(z) != 1:
        return False
    with np.load(shared / "dos-gpaw-v1" / "dataset.npz") as data:
        off, numbers = data["offsets"], data["atomic_numbers"]
        matcher = StructureMatcher()
        for i in range(len(off) - 1):
            if set(int(x) for x in numbers[off[i]:off[i + 1]]) != z:
                continue
            ref = Crystal(numbers[off[i]:off[i + 1]], data["frac_coords"][off[i]:off[i + 1]], data["lattice"][i])
            if matcher.fit(ref.to_pymatgen(), crystal.to_pymatgen()):
                return True
    return False


def prototype_key(id: str) -> tuple[str, tuple[str, ...]] | None:
    """``(family, sorted element symbols with counts)`` of a prototype id, so reordered decorations match."""
    import re

    if "-" not in id:
        return None
    family, formula = id.split("-", 1)
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", formula)
    if not parts or "".join(e + n for e, n in parts) != formula:
        return None
    return family, tuple(sorted(f"{e}{n or 1}" for e, n in parts))


# ------------------------------------------------------------------------------------------- candidates
def existing_ids(shared: Path) -> set[str]:
    base = shared / "dos-gpaw-v1"
    with np.load(base / "dataset.npz") as z:
        ids = {str(x) for x in z["ids"]}
    failures = base / "failures.jsonl"
    if failures.exists():
        ids |= {json.loads(l)["id"] for l in failures.read_text().splitlines() if l.strip()}
    return ids


def _formula(z) -> tuple[tuple[int, int], ...]:
    """Element counts as a hashable formula (not reduced: cells of equal size compare)."""
    return tuple(sorted(Counter(int(x) for x in z).items()))


def v1_perov5_formulas(shared: Path) -> set[tuple[tuple[int, int], ...]]:
    with np.load(shared / "dos-gpaw-v1" / "dataset.npz") as z:
        ids, off, numbers = z["ids"], z["offsets"], z["atomic_numbers"]
        return {_formula(numbers[off[i]:off[i + 1]]) for i in range(len(ids)) if str(ids[i]).startswith("perov5-")}


def _crystal_entry(id: str, source: str, c: Crystal, relax: bool) -> dict[str, Any]:
    return {"id": id, "source": source, "relax": relax, "n_atoms": c.num_atoms, "atomic_numbers": c.atomic_numbers.tolist(),
            "frac_coords": c.frac_coords.tolist(), "lattice": c.lattice.tolist()}  # fmt: skip


def assemble_candidates(shared: Path, log) -> list[dict[str, Any]]:
    """All candidates (not yet relaxed), smallest cells first."""
    from dosmatgen.data.sources.structure_only import read_cif, read_csv
    from dosmatgen.errors import InvalidRecordError

    have = existing_ids(shared)
    have_protos = {k for k in map(prototype_key, have) if k}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    why: Counter = Counter()

    def add(id: str, source: str, c: Crystal, relax: bool) -> None:
        if id in have or id in seen:
            why["already in dos-gpaw-v1 or duplicate"] += 1
        elif c.num_atoms > MAX_ATOMS:
            why[f"more than {MAX_ATOMS} atoms"] += 1
        elif not allowed(c.atomic_numbers):
            why["element outside Z<=83 / Tc / Pm / lanthanides"] += 1
        else:
            seen.add(id)
            out.append(_crystal_entry(id, source, c, relax))

    for name in ("perov_5_val.csv", "perov_5_test.csv"):
        for item in read_csv(shared / "structures" / name, source="cdvae-perov_5"):
            if isinstance(item, InvalidRecordError):
                why["unreadable"] += 1
                continue
            add(f"perov5-{item.id}", "cdvae-perov_5", item.crystal, False)
    log(f"perov_5 read: {len(out)} candidates so far")

    cif_items = [i for i in read_cif(shared / "structures" / "cifs.zip", source="mattergen-data-release")]
    names = {i.id for i in cif_items if not isinstance(i, InvalidRecordError)}
    for item in cif_items:
        if isinstance(item, InvalidRecordError):
            why["unreadable"] += 1
            continue
        if item.id.endswith("_symmetrized") and item.id[: -len("_symmetrized")] in names:
            why["symmetrized twin"] += 1
            continue
        rel = item.id[len("cifs/"):] if item.id.startswith("cifs/") else item.id
        add("mattergen-" + rel.replace("/", "-"), "mattergen-data-release", item.crystal, False)
    log(f"cifs.zip read: {len(out)} candidates so far")

    perovskite_formulas = {_formula(c["atomic_numbers"]) for c in out if c["source"] == "cdvae-perov_5"}
    perovskite_formulas |= v1_perov5_formulas(shared)
    for kind, elements in prototype_specs():
        id, crystal = build_prototype(kind, elements)
        if prototype_key(id) in have_protos:
            why["prototype already in dos-gpaw-v1"] += 1
        elif kind == "perovskite" and _formula(crystal.atomic_numbers) in perovskite_formulas:
            why["perovskite already among the perov_5 rows"] += 1
        else:
            add(id, PROTOTYPE_SOURCE, crystal, True)
    out = order_candidates(out)
    log(f"{len(out)} candidates; left out: {dict(why)}")
    return out


#: Mn, Fe, Co, Ni: with the non-spin-polarised dos-gpaw-v1 settings, cells made mostly of these are metals with a
#: high DOS at E_F whose SCF converges slowly (2 min per iteration for Fe6Ni; Fe5CoNi hit the 1800 s limit)
MAGNETIC_3D = frozenset({25, 26, 27, 28})


def mostly_magnetic_3d(e: dict[str, Any]) -> bool:
    """A cell of 6 or more atoms, at least half of them Mn/Fe/Co/Ni (see MAGNETIC_3D). The slow ones seen so far
    (C16-Fe2Ni 1,026 s, Ni2In-Mn2Si 919 s, Fe5CoNi > 1,800 s) all have 6-8 atoms; smaller cells stay cheap."""
    z = e.get("atomic_numbers") or []
    return len(z) >= 6 and 2 * sum(1 for x in z if x in MAGNETIC_3D) >= len(z)


def order_candidates(cands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells of 6-8 atoms first (dos-gpaw-v1's train split has 22 of them, and the model samples 4-8 atoms), then
    prototypes and MatterGen structures smallest cells first, then the ~7,000 perov_5 rows (all 5 atoms, a family
    dos-gpaw-v1 already holds), and last the 6-8-atom cells made mostly of Mn/Fe/Co/Ni (:func:`mostly_magnetic_3d`), which
    cost the most CPU per structure. Within one size, sources and families take turns, so every kind of chemistry
    advances together."""
    rank: Counter = Counter()
    keyed = []
    for e in sorted(cands, key=lambda e: (e["n_atoms"], e["id"])):
        group = (e["n_atoms"], e["source"], e["id"].split("-")[0])
        tier = 0 if e["n_atoms"] >= 6 else (2 if e["source"] == "cdvae-perov_5" else 1)
        if mostly_magnetic_3d(e):
            tier = 3
        keyed.append(((tier, e["n_atoms"], rank[group], e["source"], e["id"]), e))
        rank[group] += 1
    return [e for _, e in sorted(keyed, key=lambda t: t[0])]


def new_prototype_candidates(known: set[str], shared: Path) -> list[dict[str, Any]]:
    """Prototype candidates of ``prototype_specs()`` that are neither in ``known`` ids nor in dos-gpaw-v1."""
    have = existing_ids(shared)
    have_protos = {k for k in map(prototype_key, have | known) if k}
    out = []
    for kind, elements in prototype_specs():
        id, crystal = build_prototype(kind, elements)
        if id in known or id in have or prototype_key(id) in have_protos:
            continue
        if kind in ("fcc", "bcc", "hcp") and elemental_ground_state_duplicate(crystal, shared):
            continue
        if crystal.num_atoms <= MAX_ATOMS and allowed(crystal.atomic_numbers) and kind != "perovskite":
            out.append(_crystal_entry(id, PROTOTYPE_SOURCE, crystal, True))
    return out


def load_or_build_candidates(out_dir: Path, shared: Path, log) -> list[dict[str, Any]]:
    """The candidate list of ``out_dir`` (built once); prototypes added to ``prototype_specs`` since are merged in,
    and the list is put in :func:`order_candidates` order."""
    path = out_dir / "candidates.json"
    if path.exists():
        cands = json.loads(path.read_text())
        added = new_prototype_candidates({c["id"] for c in cands}, shared)
        if added:
            log(f"{len(added)} new prototype candidates: {dict(Counter(c['id'].split('-')[0] for c in added))}")
        ordered = order_candidates(cands + added)
        if [c["id"] for c in ordered] == [c["id"] for c in cands]:
            return cands
        cands = ordered
    else:
        cands = assemble_candidates(shared, log)
    tmp = path.with_name(f".candidates.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cands))
    os.replace(tmp, path)
    return cands


# --------------------------------------------------------------------------------------- CHGNet relaxing
class PrototypeRelaxer:
    """CHGNet cell relaxation (ASE FIRE + FrechetCellFilter), cached in ``relaxed_prototypes.jsonl``."""

    def __init__(self, cache: Path, fmax: float = 0.05, steps: int = 300):
        self.cache_path = cache
        self.fmax, self.steps = fmax, steps
        self.cache: dict[str, dict[str, Any]] = {}
        if cache.exists():
            for line in cache.read_text().splitlines():
                try:
                    e = json.loads(line)
                    self.cache[e["id"]] = e
                except (json.JSONDecodeError, KeyError):
                    continue
        self._calc = None

    def calculator(self):
        if self._calc is None:
            import torch
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            torch.set_num_threads(1)
            self._calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu", on_isolated_atoms="ignore")
        return self._calc

    def relax(self, id: str, crystal: Crystal) -> Crystal | None:
        """The relaxed crystal, or None when the relaxation failed a sanity check (reason cached)."""
        if id not in self.cache:
            self.cache[id] = entry = self._relax(id, crystal)
            with open(self.cache_path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
        entry = self.cache[id]
        if not entry["ok"]:
            return None
        return Crystal(np.array(entry["atomic_numbers"]), np.array(entry["frac_coords"]), np.array(entry["lattice"]))

    def _relax(self, id: str, crystal: Crystal) -> dict[str, Any]:
        import warnings

        from ase.filters import FrechetCellFilter
        from ase.optimize import FIRE

        atoms = crystal.to_ase()
        atoms.calc = self.calculator()
        start = time.perf_counter()
        entry: dict[str, Any] = {"id": id, "ok": False}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = FIRE(FrechetCellFilter(atoms), logfile=None)
                converged = bool(opt.run(fmax=self.fmax, steps=self.steps))
                fmax = float(np.abs(atoms.get_forces()).max())
                energy = float(atoms.get_potential_energy()) / len(atoms)
            relaxed = Crystal.from_ase(atoms)
            ratio = relaxed.volume / crystal.volume
            entry.update(steps=int(opt.nsteps), converged=converged, fmax=fmax, energy_per_atom=energy, volume_ratio=ratio,
                         atomic_numbers=relaxed.atomic_numbers.tolist(), frac_coords=relaxed.frac_coords.tolist(),
                         lattice=relaxed.lattice.tolist())  # fmt: skip
            if not np.isfinite(energy) or not (0.3 < ratio < 3.0):
                entry["reason"] = f"volume changed by x{ratio:.2f} or energy not finite"
            elif relaxed.min_interatomic_distance() < 0.9:
                entry["reason"] = f"atoms collapsed (closest pair {relaxed.min_interatomic_distance():.2f} A)"
            elif fmax > 0.2:
                entry["reason"] = f"not relaxed: max force {fmax:.2f} eV/A after {opt.nsteps} steps"
            else:
                entry["ok"] = True
        except Exception as err:  # CHGNet failure on an odd decoration: skip it, keep going
            entry["reason"] = f"{type(err).__name__}: {err}"
        entry["seconds"] = time.perf_counter() - start
        return entry


# -------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/grow/gpaw-v2"))
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/data"), help="folder with dos-gpaw-v1/ and structures/")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds per structure")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many candidates (testing)")
    parser.add_argument("--retry-failed", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="build and count the candidates, compute nothing")
    parser.add_argument("--worker", default="0/1", metavar="I/N",
                        help="take every N-th candidate starting at I (run N processes on one OUT, one core each)")
    args = parser.parse_args(argv)
    worker, n_workers = (int(x) for x in args.worker.split("/"))
    if not 0 <= worker < n_workers:
        parser.error(f"--worker {args.worker}: need 0 <= I < N")
    # `kill PID` (SIGTERM) exits through Python so the running GPAW worker's process group is killed too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from dosmatgen.dft.compute import completed_ids, compute_dos_dataset, record_name
    from dosmatgen.dft.engine import get_engine

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    logfile = open(out / "grow.log", "a", buffering=1)

    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        logfile.write(line + "\n")
        print(line, flush=True)

    cands = load_or_build_candidates(out, args.shared, log)
    counts = Counter(c["source"] for c in cands)
    log(f"{len(cands)} candidates by source: {dict(counts)}; by atoms: {dict(sorted(Counter(c['n_atoms'] for c in cands).items()))}")
    if args.dry_run:
        return 0
    if args.limit is not None:
        cands = cands[: args.limit]
    cands = cands[worker::n_workers]  # disjoint candidates: each record file has one writer
    status_name = "status.json" if n_workers == 1 else f"status-{worker}.json"
    # the DFT driver locks its output folder, so with N > 1 each worker writes into OUT/worker-I; records already in
    # OUT or in any worker folder count as done
    dest = out if n_workers == 1 else out / f"worker-{worker}"
    dest.mkdir(parents=True, exist_ok=True)

    def all_completed() -> tuple[set[str], set[str]]:
        done, failed = completed_ids(out)
        for folder in sorted(out.glob("worker-*")):
            d, f = completed_ids(folder)
            done |= d
            failed |= f
        return done, failed

    engine = get_engine("gpaw", threads=1)
    relaxer = PrototypeRelaxer(out / "relaxed_prototypes.jsonl")
    started = time.time()
    finished: list[float] = []

    def items() -> Iterator[tuple[str, Crystal, str]]:
        done, failed = all_completed()
        for c in cands:
            crystal = Crystal(np.array(c["atomic_numbers"]), np.array(c["frac_coords"]), np.array(c["lattice"]))
            if record_name(c["id"]) in done or (c["id"] in failed and not args.retry_failed):
                continue  # done (here or in another worker's folder) or failed before
            if c["relax"]:
                relaxed = relaxer.relax(c["id"], crystal)
                if relaxed is None:
                    log(f"relax-rejected {c['id']}: {relaxer.cache[c['id']].get('reason')}")
                    continue
                crystal = relaxed
            yield c["id"], crystal, c["source"]

    def on_result(id: str, result: dict[str, Any]) -> None:
        now = time.time()
        finished.append(now)
        recent = [t for t in finished if t > now - 3600]
        rate = len(recent) / min(1.0, max((now - started) / 3600, 1e-6))  # per hour over the last hour
        state = "ok" if result.get("ok") else f"FAILED {result.get('kind')}: {result.get('error')}"
        log(f"{id} {state} dft_s={float(result.get('seconds') or 0):.1f} rate={rate:.0f}/h")
        done, failed = all_completed()
        status = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "records": len(done), "failed": len(failed),
                  "attempted_this_run": len(finished), "structures_per_hour_recent": round(rate, 1),
                  "run_hours": round((now - started) / 3600, 3), "candidates": len(cands)}  # fmt: skip
        tmp = out / f".{status_name}.tmp"
        tmp.write_text(json.dumps(status, indent=1))
        os.replace(tmp, out / status_name)

    summary = compute_dos_dataset(items(), dest, engine, args.time_limit, retry_failed=args.retry_failed,
                                  threads=1, progress=False, total=len(cands), on_result=on_result)  # fmt: skip
    log(f"finished: {summary.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
