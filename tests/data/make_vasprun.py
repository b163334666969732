"""Generate a small, hand-built ``vasprun.xml`` for 2-atom Si with LORBIT = 11 partial DOS.

No real vasprun.xml with projected DOS is available offline, so this script writes one in VASP's XML layout
with just the blocks pymatgen's ``Vasprun`` reads: generator, incar, kpoints, parameters, atominfo, the initial
and final structures, one ionic step (three electronic steps) with its energy, and the DOS (total with
integrated DOS, and partial DOS per ion with the nine lm channels s, py, pz, px, dxy, dyz, dz2, dxz, x2-y2).

The densities are a synthetic semiconductor shape, not a DFT result: a valence band from E_F - 12 eV up to
E_F (s-like at the bottom, p-like at the top), a gap of ``GAP`` eV, then a conduction band. Both Si sites are
symmetry-equivalent and get the same projections; the total DOS is 1.1 x the sum of the projections (VASP's
spheres miss the interstitial charge). Densities are in states/eV.

    python tests/data/make_vasprun.py            # rewrites tests/data/vasprun/Si/vasprun.xml

Tests import :func:`make_vasprun_xml` to write variants (no partial DOS, spin-polarised, broken XML).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N_ENERGIES = 80
EFERMI = 5.6  # eV, absolute (VASP's zero); here the valence-band maximum
GAP = 1.1  # eV
A_SI = 5.43  # Å, conventional cubic lattice constant
LM_FIELDS = ("s", "py", "pz", "px", "dxy", "dyz", "dz2", "dxz", "x2-y2")
E_TOTAL = -10.84321  # eV, a plausible PBE energy of Si2


def energy_grid(n: int = N_ENERGIES) -> np.ndarray:
    """Absolute energies (eV): ``n`` points from E_F - 12 to E_F + 8."""
    return np.linspace(EFERMI - 12.0, EFERMI + 8.0, n)


def site_lm_dos(e: np.ndarray) -> np.ndarray:
    """(n_E, 9) synthetic lm-projected DOS of one Si site (states/eV), zero inside the gap."""
    x = e - EFERMI
    vb = np.clip(-x, 0.0, None) * (x <= 0)  # depth below the VBM
    cb = np.clip(x - GAP, 0.0, None) * (x >= GAP)  # height above the CBM
    shape_vb = np.sqrt(vb) * np.exp(-((vb - 4.0) ** 2) / 30.0) * (vb < 12.0)
    shape_cb = np.sqrt(cb) * np.exp(-((cb - 3.0) ** 2) / 10.0)
    s = 0.30 * shape_vb * np.exp(-((vb - 9.0) ** 2) / 8.0) + 0.10 * shape_cb
    p = 0.25 * shape_vb * np.exp(-((vb - 2.5) ** 2) / 6.0) + 0.20 * shape_cb
    d = 0.02 * shape_vb + 0.05 * shape_cb
    cols = [s, p, p, p, d, d, d, d, d]
    return np.round(np.stack(cols, axis=1), 4)


def _rows(data: np.ndarray, indent: str) -> str:
    return "\n".join(indent + "<r>" + " ".join(f"{v:11.4f}" for v in row) + " </r>" for row in data)


def _structure(name: str, lattice: np.ndarray, frac: np.ndarray) -> str:
    basis = "\n".join(f"    <v>{' '.join(f'{v:16.8f}' for v in row)} </v>" for row in lattice)
    rec = np.linalg.inv(lattice).T
    rec_basis = "\n".join(f"    <v>{' '.join(f'{v:16.8f}' for v in row)} </v>" for row in rec)
    pos = "\n".join(f"   <v>{' '.join(f'{v:16.8f}' for v in row)} </v>" for row in frac)
    name_attr = f' name="{name}"' if name else ""
    return f"""<structure{name_attr} >
  <crystal>
   <varray name="basis" >
{basis}
   </varray>
   <i name="volume">{abs(np.linalg.det(lattice)):16.8f} </i>
   <varray name="rec_basis" >
{rec_basis}
   </varray>
  </crystal>
  <varray name="positions" >
{pos}
  </varray>
 </structure>"""


def make_vasprun_xml(
    n_energies: int = N_ENERGIES,
    *,
    partial: bool = True,
    spin_polarized: bool = False,
    efermi: float | None = EFERMI,
    elements: tuple[str, str] = ("Si", "Si"),
) -> str:
    """The vasprun.xml text. ``partial=False`` drops the partial DOS (LORBIT unset); ``spin_polarized`` writes
    ISPIN = 2 with each spin carrying half the densities; ``efermi=None`` leaves out the Fermi level."""
    e = energy_grid(n_energies)
    site = site_lm_dos(e)
    spins = [0.5, 0.5] if spin_polarized else [1.0]
    lattice = 0.5 * A_SI * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    frac = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    de = e[1] - e[0]

    total_sets = []
    for k, w in enumerate(spins):
        tot = np.round(1.1 * 2 * site.sum(axis=1) * w, 4)
        integ = np.round(np.cumsum(tot) * de, 4)
        total_sets.append(
            f'     <set comment="spin {k + 1}">\n{_rows(np.stack([e, tot, integ], axis=1), "       ")}\n     </set>'
        )
    partial_xml = ""
    if partial:
        ions = []
        for ion in range(2):
            spin_sets = []
            for k, w in enumerate(spins):
                data = np.concatenate([e[:, None], np.round(site * w, 4)], axis=1)
                spin_sets.append(f'      <set comment="spin {k + 1}">\n{_rows(data, "        ")}\n      </set>')
            ions.append(f'     <set comment="ion {ion + 1}">\n' + "\n".join(spin_sets) + "\n     </set>")
        fields = "\n".join(f"    <field>{f:>6}</field>" for f in LM_FIELDS)
        partial_xml = f"""
  <partial>
   <array>
    <dimension dim="1">gridpoints</dimension>
    <dimension dim="2">spin</dimension>
    <dimension dim="3">ion</dimension>
    <field>energy</field>
{fields}
    <set>
{chr(10).join(ions)}
    </set>
   </array>
  </partial>"""
    efermi_xml = f'  <i name="efermi">{efermi:14.8f} </i>\n' if efermi is not None else ""
    ispin = 2 if spin_polarized else 1
    lorbit = '\n  <i type="int" name="LORBIT">    11</i>' if partial else ""
    scsteps = "\n".join(
        f"""  <scstep>
   <energy>
    <i name="e_fr_energy">{E_TOTAL + d:16.8f} </i>
    <i name="e_wo_entrp">{E_TOTAL + d:16.8f} </i>
    <i name="e_0_energy">{E_TOTAL + d:16.8f} </i>
   </energy>
  </scstep>"""
        for d in (0.5, 0.01, 0.0)
    )
    atoms_rc = "\n".join(f"    <rc><c>{el:<2}</c><c>   1</c></rc>" for el in elements)
    return f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<modeling>
 <generator>
  <i name="program" type="string">vasp </i>
  <i name="version" type="string">6.3.2  </i>
  <i name="subversion" type="string">hand-built test fixture (dosmatgen tests/data/make_vasprun.py) </i>
  <i name="platform" type="string">LinuxIFC </i>
 </generator>
 <incar>
  <i type="string" name="PREC">accurate</i>
  <i name="ENCUT">    520.00000000</i>
  <i type="int" name="ISPIN">     {ispin}</i>
  <i type="int" name="ISMEAR">    -5</i>
  <i type="int" name="NSW">     0</i>
  <i type="int" name="IBRION">    -1</i>{lorbit}
 </incar>
 <kpoints>
  <generation param="Gamma">
   <v type="int" name="divisions">       4        4        4 </v>
   <v name="usershift">      0.00000000       0.00000000       0.00000000 </v>
  </generation>
  <varray name="kpointlist" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
   <v>       0.25000000       0.00000000       0.00000000 </v>
  </varray>
  <varray name="weights" >
   <v>       0.25000000 </v>
   <v>       0.75000000 </v>
  </varray>
 </kpoints>
 <parameters>
  <separator name="electronic" >
   <i type="int" name="NELM">    60</i>
   <i type="int" name="ISPIN">     {ispin}</i>
  </separator>
  <separator name="ionic" >
   <i type="int" name="NSW">     0</i>
   <i type="int" name="IBRION">    -1</i>
  </separator>
 </parameters>
 <atominfo>
  <atoms>       2 </atoms>
  <types>       1 </types>
  <array name="atoms" >
   <dimension dim="1">ion</dimension>
   <field type="string">element</field>
   <field type="int">atomtype</field>
   <set>
{atoms_rc}
   </set>
  </array>
  <array name="atomtypes" >
   <dimension dim="1">type</dimension>
   <field type="int">atomspertype</field>
   <field type="string">element</field>
   <field>mass</field>
   <field>valence</field>
   <field type="string">pseudopotential</field>
   <set>
    <rc><c>   2</c><c>{elements[0]:<2}</c><c>     28.08500000</c><c>      4.00000000</c><c>  PAW_PBE Si 05Jan2001 </c></rc>
   </set>
  </array>
 </atominfo>
 {_structure("initialpos", lattice, frac)}
 <calculation>
{scsteps}
 {_structure("", lattice, frac)}
  <varray name="forces" >
   <v>       0.00000000       0.00000000       0.00000000 </v>
   <v>       0.00000000       0.00000000       0.00000000 </v>
  </varray>
  <energy>
   <i name="e_fr_energy">{E_TOTAL:16.8f} </i>
   <i name="e_wo_entrp">{E_TOTAL:16.8f} </i>
   <i name="e_0_energy">{E_TOTAL:16.8f} </i>
  </energy>
  <dos>
{efermi_xml}  <total>
   <array>
    <dimension dim="1">gridpoints</dimension>
    <dimension dim="2">spin</dimension>
    <field>energy</field>
    <field>total</field>
    <field>integrated</field>
    <set>
{chr(10).join(total_sets)}
    </set>
   </array>
  </total>{partial_xml}
  </dos>
 </calculation>
 {_structure("finalpos", lattice, frac)}
</modeling>
"""


def main(out: str | None = None) -> Path:
    path = Path(out) if out else Path(__file__).resolve().parent / "vasprun" / "Si" / "vasprun.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make_vasprun_xml(), encoding="ascii")
    return path


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else None))
