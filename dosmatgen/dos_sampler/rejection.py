"""Rejection filter: which generated DOS rows meet the targets, by the foundation's derived properties.

The definitions are those of :mod:`dosmatgen.dos.property_targets` (shared with ``dosmatgen design`` and
``dosmatgen rank``); the DOSSampler always applies the thermoelectric cosine criterion against its reference DOS.
"""

from __future__ import annotations

import numpy as np

from dosmatgen.dos.properties import derived_properties_batch, within_tolerance  # noqa: F401  (re-exported)
from dosmatgen.dos.property_targets import PropertyTargets, meets_targets

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
    """(n,) bool: rows of ``dos`` (n, 256) that meet every target; a thermoelectric target needs the reference DOS
    (:func:`dosmatgen.dos.property_targets.meets_targets` with ``require_te_reference``)."""
    return meets_targets(dos, targets, reference_te_dos, require_te_reference=True,
                         properties=dos_properties(dos) if properties is None else properties)
