"""The total DOS of a reference crystal, for crystal-to-crystal translation (``dosmatgen design --like REF.cif``).

In order: (1) the DFT total DOS of the dataset record whose structure matches REF (pymatgen StructureMatcher,
default tolerances, among records of the same reduced formula); (2) otherwise the surrogate total DOS
(:mod:`dosmatgen.design.total_dos`); (3) with ``gpaw=True``, a GPAW calculation of REF (slow; needs GPAW)
instead of the surrogate. The result says which of the three it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError


@dataclass(frozen=True)
class ReferenceDOS:
    """``dos`` (256,) states/eV/atom on TOTAL_GRID; ``how`` is "dataset", "surrogate" or "gpaw"."""

    label: str
    dos: np.ndarray
    how: str
    file: str
    crystal: Crystal


def read_reference(path: str | Path) -> Crystal:
    """The one structure of a CIF/extxyz file; InvalidRecordError naming the file otherwise."""
    from dosmatgen.io.structure_files import read_structures

    p = Path(path)
    if not p.is_file():
        raise InvalidRecordError("--like: reference structure file not found", file=str(p))
    try:
        _, crystals = read_structures(p)
    except InvalidRecordError as err:
        raise err.located(file=str(p)) from None
    except Exception as exc:  # structure parsers raise many kinds of errors on garbage
        raise InvalidRecordError(f"--like: cannot read the reference ({type(exc).__name__}: {exc})", file=str(p)) from None
    if len(crystals) != 1:
        raise InvalidRecordError(f"--like: the reference file holds {len(crystals)} structures, expected one", file=str(p))
    return crystals[0]


def match_in_store(crystal: Crystal, store_path: str) -> tuple[str, np.ndarray] | None:
    """(record id, total DOS (256,)) of the first record of the store that matches ``crystal``, else None."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    from dosmatgen.data.store import DatasetStore

    mem = DatasetStore.open(store_path).to_memory()
    want = crystal.to_pymatgen()
    formula = want.composition.reduced_formula
    elements = sorted(set(int(z) for z in crystal.atomic_numbers))
    matcher = StructureMatcher()
    for i, rid in enumerate(mem.ids):
        if sorted(set(int(z) for z in mem.atomic_numbers[mem.atom_slice(i)])) != elements:
            continue
        structure = mem.crystal(i).to_pymatgen()
        if structure.composition.reduced_formula == formula and matcher.fit(want, structure):
            return rid, np.asarray(mem.total_dos[i], dtype=np.float64)
    return None


def gpaw_total_dos(crystal: Crystal, label: str, workdir: Path, engine_options: dict | None = None) -> np.ndarray:
    """Per-atom total DOS features of ``crystal`` from a GPAW calculation (the dataset's featurization)."""
    from dosmatgen.dft.engine import get_engine
    from dosmatgen.dos.featurize import total_features

    engine = get_engine("gpaw", **dict(engine_options or {}))
    workdir.mkdir(parents=True, exist_ok=True)
    record = engine.compute_dos(crystal, label, workdir)
    return np.asarray(total_features(record), dtype=np.float64)


def reference_dos(path: str | Path, *, store: str | None = None, surrogate: str = "bundled:surrogate-small",
                  gpaw: bool = False, workdir: str | Path | None = None, device: str = "cpu") -> ReferenceDOS:
    """The reference's total DOS (module docstring for the order). ``store`` None: the bundled dataset."""
    from dosmatgen.data.bundled import bundled_dataset_path

    crystal = read_reference(path)
    label = Path(path).stem
    found = match_in_store(crystal, str(store) if store else str(bundled_dataset_path()))
    if found is not None:
        rid, dos = found
        return ReferenceDOS(f"{label}={rid}", dos, "dataset", str(path), crystal)
    if gpaw:
        import tempfile

        work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dosmatgen-like-"))
        return ReferenceDOS(label, gpaw_total_dos(crystal, label, work), "gpaw", str(path), crystal)
    from dosmatgen.design.total_dos import SurrogateTotalDOS

    dos = SurrogateTotalDOS(surrogate, device=device)([crystal])[0]
    return ReferenceDOS(label, dos, "surrogate", str(path), crystal)
