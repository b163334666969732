"""A stand-in for ``vasp_std`` used as the VASP engine's launch command in tests (no VASP offline).

    python tests/fake_vasp.py FIXTURE_VASPRUN MODE

Run in a step folder written by the engine, it checks what VASP itself would need (INCAR, POSCAR, KPOINTS and a
POTCAR or POTCAR.spec; for ICHARG = 11 also the copied CHGCAR) and then writes outputs the way VASP would:
``vasprun.xml`` (the hand-built fixture plus an ``<eigenvalues>`` block and NBANDS, which pymatgen's
``from_prev_calc`` reads), a minimal ``OUTCAR``, and for a self-consistent run a ``CHGCAR``. It prints a log to
stdout like VASP does. Modes:

* ``ok``: the above;
* ``fail``: prints an error and exits with status 1 (a crashed VASP);
* ``unconverged``: writes a vasprun.xml whose electronic loop used all NELM steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

NBANDS = 8


def eigenvalues_block(efermi: float, n_kpoints: int = 2) -> str:
    sets = []
    for k in range(n_kpoints):
        bands = np.linspace(efermi - 12.0, efermi - 0.2, NBANDS // 2).tolist() + np.linspace(efermi + 1.1, efermi + 8.0, NBANDS // 2).tolist()
        rows = "\n".join(f"       <r> {e + 0.05 * k:10.4f} {1.0 if e < efermi else 0.0:8.4f} </r>" for e in bands)
        sets.append(f'      <set comment="kpoint {k + 1}">\n{rows}\n      </set>')
    return (
        '  <eigenvalues>\n   <array>\n    <dimension dim="1">band</dimension>\n    <dimension dim="2">kpoint</dimension>\n'
        '    <dimension dim="3">spin</dimension>\n    <field>eigene</field>\n    <field>occ</field>\n    <set>\n'
        '     <set comment="spin 1">\n' + "\n".join(sets) + "\n     </set>\n    </set>\n   </array>\n  </eigenvalues>\n"
    )


def main(fixture: str, mode: str) -> int:
    cwd = Path.cwd()
    print(f"running on    1 total cores (fake VASP, mode {mode})")
    missing = [f for f in ("INCAR", "POSCAR", "KPOINTS") if not (cwd / f).is_file()]
    if not ((cwd / "POTCAR").is_file() or (cwd / "POTCAR.spec").is_file()):
        missing.append("POTCAR")
    incar = (cwd / "INCAR").read_text() if (cwd / "INCAR").is_file() else ""
    nscf = any(line.replace(" ", "").upper() == "ICHARG=11" for line in incar.splitlines())
    if nscf and not (cwd / "CHGCAR").is_file():
        missing.append("CHGCAR (needed by ICHARG = 11)")
    if missing:
        print(f"ERROR: missing input files: {', '.join(missing)}")
        return 1
    if mode == "fail":
        print("ERROR: internal error in SUBROUTINE FAKE: the fake VASP was told to fail")
        return 1
    text = Path(fixture).read_text()
    text = text.replace('<separator name="electronic" >\n', f'<separator name="electronic" >\n   <i type="int" name="NBANDS">     {NBANDS}</i>\n', 1)
    if mode == "unconverged":
        text = text.replace('name="NELM">    60', 'name="NELM">     3', 1)
    efermi = float(text.split('<i name="efermi">')[1].split("<")[0])
    i = text.index("  <dos>")
    (cwd / "vasprun.xml").write_text(text[:i] + eigenvalues_block(efermi) + text[i:])
    (cwd / "OUTCAR").write_text(
        " vasp.6.3.2 (fake)\n"
        f"   k-points           NKPTS =      2   k-points in BZ     NKDIM =      2   number of bands    NBANDS=      {NBANDS}\n"
        "   total plane-waves  NPLWV =  10000\n"
        "   IBRION =     -1    ionic relax: 0-MD 1-quasi-New 2-CG\n"
        f" E-fermi : {efermi:9.4f}     XC(G=0):  -7.1     alpha+bet : -4.3\n"
    )
    if not nscf:
        (cwd / "CHGCAR").write_text("fake charge density\n")
    print(" writing wavefunctions (fake)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
