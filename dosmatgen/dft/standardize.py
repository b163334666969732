"""Snap a crystal to its symmetrized standard primitive cell (spglib), as the dos-gpaw-v1 data did.

Symmetrizing removes the small distortions that would otherwise break point-group symmetry in the DFT code
(fewer irreducible k-points, equal projections on equivalent sites). The snapped cell is used only where it keeps
the atom count and the volume; otherwise the input is returned unchanged.
"""

from __future__ import annotations

import numpy as np

from dosmatgen.crystal import Crystal

#: spglib tolerance (Å) used for dos-gpaw-v1
DEFAULT_SYMPREC = 0.05
#: largest relative volume change accepted from the symmetrization
VOLUME_RTOL = 0.01


def standardize_crystal(crystal: Crystal, symprec: float = DEFAULT_SYMPREC) -> tuple[Crystal, bool]:
    """Return ``(crystal_to_compute, snapped)``.

    ``snapped`` is True when the symmetrized standard primitive cell (``spglib.standardize_cell`` with
    ``to_primitive=True``, idealized) was used: it has the same number of atoms and a volume within
    ``VOLUME_RTOL`` of the input. Otherwise the input crystal is returned unchanged with ``snapped=False``.
    """
    import warnings

    import spglib

    cell = (crystal.lattice, crystal.frac_coords, crystal.atomic_numbers)
    try:
        with warnings.catch_warnings():  # spglib 2.x warns about its error-handling mode; either mode is handled here
            warnings.simplefilter("ignore", DeprecationWarning)
            result = spglib.standardize_cell(cell, to_primitive=True, no_idealize=False, symprec=symprec)
    except Exception:  # newer spglib raises SpglibError where older versions returned None
        result = None
    if result is None:
        return crystal, False
    lattice, frac, numbers = result
    if len(numbers) != crystal.num_atoms:
        return crystal, False
    volume = abs(float(np.linalg.det(lattice)))
    if abs(volume - crystal.volume) > VOLUME_RTOL * crystal.volume:
        return crystal, False
    return Crystal(np.asarray(numbers, dtype=np.int64), frac, lattice, dict(crystal.metadata)), True
