"""Test helpers for the source readers and structure files: paths to tests/data and error assertions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError

DATA = Path(__file__).parent / "data"
FIXTURES = DATA / "fixtures"
GPAW_SUBSET = DATA / "gpaw_subset"
STRUCTURES = DATA / "structures"
VASPRUN_SI = DATA / "vasprun" / "Si" / "vasprun.xml"


def split(items) -> tuple[list[DOSRecord], list[InvalidRecordError]]:
    """(records, errors) of a reader's output; fails on anything else."""
    records, errors = [], []
    for item in items:
        if isinstance(item, InvalidRecordError):
            errors.append(item)
        else:
            assert isinstance(item, DOSRecord), f"reader yielded {type(item).__name__}"
            records.append(item)
    return records, errors


def assert_located(err: InvalidRecordError, *, file: str | Path, record: str, problem: str) -> None:
    """The error names the file (suffix match), the record (substring) and the problem (substring, case-insensitive)."""
    assert isinstance(err, InvalidRecordError), err
    assert err.file is not None and str(err.file).endswith(str(file)), f"file {err.file!r} does not end with {file!s}"
    assert err.record is not None and record in str(err.record), f"record {err.record!r} does not contain {record!r}"
    assert problem.lower() in err.problem.lower(), f"problem {err.problem!r} does not mention {problem!r}"
    text = str(err)
    assert str(err.file) in text and str(err.record) in text and err.problem in text


def one_error(errors: list[InvalidRecordError]) -> InvalidRecordError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def same_structure_up_to_site_order(a: Crystal, b: Crystal, atol: float = 1e-6) -> bool:
    """Same species at the same fractional coordinates (any order) and the same lattice parameters."""
    from pymatgen.core import Lattice

    if a.num_atoms != b.num_atoms:
        return False
    la, lb = Lattice(a.lattice), Lattice(b.lattice)
    if not (np.allclose(la.abc, lb.abc, atol=atol) and np.allclose(la.angles, lb.angles, atol=1e-4)):
        return False
    unused = list(range(b.num_atoms))
    for z, x in zip(a.atomic_numbers, a.frac_coords):
        match = None
        for j in unused:
            d = x - b.frac_coords[j]
            d -= np.round(d)
            if b.atomic_numbers[j] == z and np.all(np.abs(d) < atol):
                match = j
                break
        if match is None:
            return False
        unused.remove(match)
    return True


def load_script(name: str) -> ModuleType:
    """Import a generator script from tests/data (e.g. ``make_vasprun``)."""
    spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module
