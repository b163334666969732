"""Reader for VASP ``vasprun.xml`` through pymatgen's ``Vasprun``.

The DOS is ``Vasprun(...).complete_dos`` converted by :func:`record_from_complete_dos` (energies relative to
E_F, s/p/d per site summed over m and spins, total DOS summed over spins). Site projections need a run with
``LORBIT = 10`` or ``11``; without them the record is rejected unless ``require_site_dos=False``.
``energy`` is ``Vasprun.final_energy`` (eV, VASP's reference). The structure is the final one.

Input: a ``vasprun.xml`` (or ``.xml.gz``) file, or a folder searched recursively for ``vasprun.xml*``.
Id: for a file named ``vasprun.xml*`` the name of its folder (relative to the input folder when a folder is
given), else the file name without ``.xml``/``.xml.gz``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

from dosmatgen.data.sources._common import RecordOrError, attempt, require_exists
from dosmatgen.data.sources.completedos import record_from_complete_dos
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError

READER_NAME = "vasprun"


def _is_vasprun_name(name: str) -> bool:
    return name.startswith("vasprun") and (name.endswith(".xml") or name.endswith(".xml.gz"))


def _record_id(file: Path, root: Path) -> str:
    if file.name.startswith("vasprun.xml"):
        if root.is_dir() and file.parent != root:
            return file.parent.relative_to(root).as_posix()
        return file.parent.name or file.stem
    for suffix in (".xml.gz", ".xml"):
        if file.name.endswith(suffix):
            return file.name[: -len(suffix)]
    return file.stem


def _diagnose_dos(path: Path) -> str:
    """Why pymatgen could not parse the ``<dos>`` block (it swallows the exception): missing E_F or other."""
    import gzip
    import xml.etree.ElementTree as ET

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for _, elem in ET.iterparse(fh, events=("end",)):
                if elem.tag == "dos" and elem.get("comment") != "kpoints_opt":
                    if elem.find("i[@name='efermi']") is None:
                        return "missing Fermi level (no <i name=\"efermi\"> in the <dos> block)"
                    break
                if elem.tag in ("r", "v"):
                    elem.clear()  # data rows hold most of the memory; nothing we need
    except (ET.ParseError, OSError):
        pass
    return "the <dos> block of vasprun.xml could not be parsed"


def record_from_vasprun(path: str | Path, id: str, source: str = READER_NAME, *, require_site_dos: bool = True) -> DOSRecord:
    """Parse one vasprun.xml into a (not yet validated) DOSRecord."""
    from pymatgen.io.vasp.outputs import Vasprun

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged-run and POTCAR warnings are not ours to print
        vr = Vasprun(str(path), parse_dos=True, parse_eigen=False, parse_projected_eigen=False, parse_potcar_file=False)
        if getattr(vr, "dos_has_errors", False):
            raise InvalidRecordError(_diagnose_dos(Path(path)))
        if not hasattr(vr, "tdos"):
            raise InvalidRecordError("vasprun.xml has no <dos> block")
        if vr.efermi is None:
            raise InvalidRecordError("missing Fermi level (no efermi in vasprun.xml)")
        if require_site_dos and not vr.pdos:
            raise InvalidRecordError("vasprun.xml has no site-projected DOS (run VASP with LORBIT = 11)")
        energy = float(vr.final_energy)
    meta = {
        "reader": READER_NAME,
        "vasp_version": str(vr.vasp_version),
        "converged": bool(vr.converged),
        "incar": {k: v for k, v in dict(vr.incar).items() if isinstance(v, (str, int, float, bool))},
    }
    return record_from_complete_dos(
        vr.complete_dos, id, source, energy=energy if energy != float("inf") else None, metadata=meta
    )


def read_vasprun(
    path: str | Path,
    *,
    source: str = READER_NAME,
    require_site_dos: bool = True,
    validate: bool = True,
    check_geometry: bool = True,
) -> Iterator[RecordOrError]:
    """Yield one DOSRecord (or located InvalidRecordError) per vasprun.xml file under ``path``.

    Raises InvalidRecordError only for a missing path or a folder with no vasprun.xml files.
    """
    root = require_exists(path)
    if root.is_dir():
        files = sorted(f for f in root.rglob("*") if f.is_file() and _is_vasprun_name(f.name))
        if not files:
            raise InvalidRecordError("folder has no vasprun*.xml files", file=str(root))
    else:
        files = [root]
    for f in files:
        rid = _record_id(f, root)
        yield attempt(
            lambda f=f, rid=rid: record_from_vasprun(f, rid, source, require_site_dos=require_site_dos),
            file=f, record=rid, context="cannot parse vasprun.xml", validate=validate, check_geometry=check_geometry,
        )
