"""Reference thermoelectric DOS for the thermoelectric filter (paper Section 6.2).

The reference is the first of ``TE_REFERENCE_IDS`` present in the store whose own DOS passes the filter's gap
and DOS(E_F) conditions. rocksalt PbTe comes first: a textbook thermoelectric (lead telluride) and in the bundled
store's train split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dosmatgen.data.store import DatasetStore
from dosmatgen.dos.properties import TE_GAP_RANGE_EV, ZERO_DOS_THRESHOLD, band_gap_soft, dos_at_fermi
from dosmatgen.errors import DosmatgenError

TE_REFERENCE_IDS = ("rocksalt-PbTe", "halfHeusler-TiNiSn", "halfHeusler-ZrNiSn", "rocksalt-PbSe")


def reference_thermoelectric(store_path: str | Path) -> tuple[str, np.ndarray]:
    """(id, per-atom total DOS (256,)) of the reference thermoelectric in the store."""
    store = DatasetStore.open(store_path)
    lo, hi = TE_GAP_RANGE_EV
    for rid in TE_REFERENCE_IDS:
        if rid not in store.ids:
            continue
        dos = store.total_features(store.ids.index(rid)).astype(np.float64)
        if lo <= float(band_gap_soft(dos)) <= hi and float(dos_at_fermi(dos)) <= ZERO_DOS_THRESHOLD:
            return rid, dos
    raise DosmatgenError(f"{store_path}: none of the reference thermoelectrics {TE_REFERENCE_IDS} is present and passes the filter")
