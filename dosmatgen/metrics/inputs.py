"""Input coercion and checks shared by the metrics.

Generated structures arrive in many shapes: a :class:`~dosmatgen.crystal.Crystal`, a pymatgen ``Structure``,
an ASE ``Atoms``, a ``(atomic_numbers, frac_coords, lattice)`` tuple or dict of raw arrays (possibly NaN from
a diverged sampler), or ``None`` (the sampler produced nothing). :func:`to_crystal_or_none` turns any of them
into a ``Crystal`` or ``None``; metrics treat ``None`` as an invalid structure and never crash on it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError


class MetricInputError(InvalidRecordError, ValueError):
    """Arrays handed to a metric have the wrong or mismatching shapes (also a ``ValueError``)."""


def to_crystal_or_none(obj: Any) -> Crystal | None:
    """Return ``obj`` as a Crystal, or None when it is missing, empty, non-finite or otherwise unusable.

    Accepts a Crystal, a pymatgen ``Structure``, an ASE ``Atoms``, a mapping with keys
    ``atomic_numbers``/``frac_coords``/``lattice`` or a 3-tuple of those arrays.
    """
    if obj is None:
        return None
    try:
        if isinstance(obj, Crystal):
            crystal = obj
        elif isinstance(obj, Mapping):
            crystal = Crystal(obj["atomic_numbers"], obj["frac_coords"], obj["lattice"])
        elif isinstance(obj, (tuple, list)) and len(obj) == 3:
            crystal = Crystal(*obj)
        elif hasattr(obj, "lattice") and hasattr(obj, "frac_coords") and hasattr(obj, "species"):
            crystal = Crystal.from_pymatgen(obj)
        elif hasattr(obj, "get_scaled_positions") and hasattr(obj, "cell"):
            crystal = Crystal.from_ase(obj)
        else:
            return None
    except (InvalidRecordError, ValueError, TypeError, KeyError, IndexError, np.linalg.LinAlgError):
        return None
    if crystal.num_atoms == 0:
        return None
    return crystal


def as_matching_2d(a: Any, b: Any, names: tuple[str, str] = ("prediction", "target")) -> tuple[np.ndarray, np.ndarray]:
    """Return ``a`` and ``b`` as float64 arrays of the same shape (M, K); 1-D inputs become one row.

    Raises MetricInputError naming both shapes when they disagree or are not 1-D/2-D.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if y.ndim == 1:
        y = y[None, :]
    if x.ndim != 2 or y.ndim != 2:
        raise MetricInputError(
            f"{names[0]} and {names[1]} must be 1-D or 2-D (rows = sites, columns = energy bins); "
            f"got shapes {np.shape(a)} and {np.shape(b)}"
        )
    if x.shape != y.shape:
        raise MetricInputError(
            f"shape mismatch: {names[0]} has shape {x.shape} but {names[1]} has shape {y.shape} "
            "(expected the same (sites, energy bins))"
        )
    return x, y


def as_matching_1d(a: Any, b: Any, names: tuple[str, str] = ("prediction", "target")) -> tuple[np.ndarray, np.ndarray]:
    """Return ``a`` and ``b`` as float64 vectors of equal length; raise MetricInputError otherwise."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise MetricInputError(
            f"{names[0]} and {names[1]} must be vectors of equal length; got shapes {x.shape} and {y.shape}"
        )
    return x, y


def check_same_length(a: Any, b: Any, names: tuple[str, str]) -> None:
    """Raise MetricInputError when two sequences (e.g. generated vs reference structures) differ in length."""
    if len(a) != len(b):
        raise MetricInputError(f"{len(a)} {names[0]} but {len(b)} {names[1]}: they must be paired one to one")
