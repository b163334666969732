"""Rejection filter: which generated DOS rows meet the targets, by the foundation's derived properties.

Numeric targets t: |x - t| <= rel_tol * t, or |x| <= zero_abs_tol when t = 0. ``band_gap`` is Algorithm 1
(:func:`dosmatgen.dos.properties.band_gap_soft`), ``dos_ef`` :func:`dos_at_fermi`, ``n_ef``
:func:`integrated_dos_bins`. ``tcm`` uses :func:`transparent_conductor_mask`, ``thermoelectric``
:func:`thermoelectric_mask` against a reference DOS.
"""

from __future__ import annotations

import numpy as np

from dosmatgen.dos.properties import (  # noqa: F401  (within_tolerance re-exported)
    derived_properties_batch, thermoelectric_mask, transparent_conductor_mask, within_tolerance)
from dosmatgen.dos_sampler.targets import PropertyTargets
from dosmatgen.errors import DosmatgenError

#: Names of GeneratedDos.properties -> names of dosmatgen.dos.properties.derived_properties_batch.
PROPERTY_ALIASES = {"band_gap": "band_gap", "dos_ef": "dos_fermi", "n_ef": "n_fermi"}


def dos_properties(dos: np.ndarray) -> dict[str, np.ndarray]:
    """Derived properties of rows (n, 256): band_gap, dos_ef, n_ef, then the foundation's other properties."""
    raw = derived_properties_batch(dos)
    out = {alias: raw[name] for alias, name in PROPERTY_ALIASES.items()}
    out.update({name: v for name, v in raw.items() if name not in PROPERTY_ALIASES.values()})
    return out


def accept_mask(
    dos: np.ndarray, targets: PropertyTargets, reference_te_dos: np.ndarray | None = None, properties: dict | None = None
) -> np.ndarray:
    """(n,) bool: rows of ``dos`` (n, 256) that meet every target."""
    props = dos_properties(dos) if properties is None else properties
    ok = np.ones(np.asarray(dos).shape[0], dtype=bool)
    for name in ("band_gap", "dos_ef", "n_ef"):
        target = getattr(targets, name)
        if target is not None:
            ok &= within_tolerance(props[name], target, targets.rel_tol, targets.zero_abs_tol)
    if targets.tcm is not None:
        ok &= transparent_conductor_mask(np.asarray(dos), tcm_type=targets.tcm)
    if targets.thermoelectric:
        if reference_te_dos is None:
            raise DosmatgenError("thermoelectric target needs a reference thermoelectric DOS (the checkpoint has none)")
        ok &= thermoelectric_mask(np.asarray(dos), reference_te_dos)
    return ok
