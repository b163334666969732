"""The record every source reader yields: a structure, its DOS on a declared grid, E_F, energy, metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError

SPD_CHANNELS = ("s", "p", "d")


@dataclass(eq=False)
class DOSRecord:
    """One structure and (optionally) its densities of states.

    * ``energies``: (n_E,) strictly increasing energies **relative to E_F**, eV (any spacing).
    * ``site_dos``: (n_atoms, n_channels, n_E) states/eV per site, channels named in ``channels``
      (``("s", "p", "d")`` for l-projected data, ``("total",)`` when only the site sum is known).
    * ``total_dos``: (n_E,) states/eV of the whole cell, or None.
    * ``efermi``: absolute Fermi level in the source's energy zero (eV). Required whenever a DOS is present.
    * ``energy``: total energy (eV) in the source's reference, or None.

    Structure-only records (CIF, CSV, extxyz) have ``energies``, ``site_dos`` and ``total_dos`` set to None.
    """

    id: str
    source: str
    crystal: Crystal
    energies: np.ndarray | None = None
    site_dos: np.ndarray | None = None
    channels: tuple[str, ...] = SPD_CHANNELS
    total_dos: np.ndarray | None = None
    efermi: float | None = None
    energy: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_dos(self) -> bool:
        return self.site_dos is not None or self.total_dos is not None

    def site_dos_summed(self) -> np.ndarray:
        """(n_atoms, n_E): the site DOS summed over channels (s + p + d)."""
        if self.site_dos is None:
            raise InvalidRecordError("record has no site DOS", record=self.id)
        return np.asarray(self.site_dos).sum(axis=1)

    def validate(self, *, file: str | None = None, check_geometry: bool = True) -> "DOSRecord":
        """Raise InvalidRecordError (naming file and record) for anything a builder must not store."""
        try:
            if check_geometry:
                self.crystal.validate_geometry()
            if not self.has_dos:
                return self
            if self.efermi is None or not np.isfinite(self.efermi):
                raise InvalidRecordError(f"missing or non-finite Fermi level (efermi={self.efermi})")
            if self.energies is None:
                raise InvalidRecordError("DOS given without its energy grid")
            e = np.asarray(self.energies, dtype=np.float64)
            if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
                raise InvalidRecordError("energy grid must be 1-D, finite and strictly increasing")
            if self.site_dos is not None:
                s = np.asarray(self.site_dos)
                expected = (self.crystal.num_atoms, len(self.channels), e.size)
                if s.shape != expected:
                    raise InvalidRecordError(
                        f"site DOS has shape {s.shape}, expected (atoms, channels, energies) = {expected}"
                    )
                _check_values(s, "site DOS")
            if self.total_dos is not None:
                t = np.asarray(self.total_dos)
                if t.shape != (e.size,):
                    raise InvalidRecordError(f"total DOS has {t.shape} values, expected ({e.size},) to match the energy grid")
                _check_values(t, "total DOS")
        except InvalidRecordError as err:
            raise err.located(file=file, record=self.id) from None
        return self


def _check_values(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise InvalidRecordError(f"{what} contains NaN or infinite values")
    # tiny negative values come from numerical smoothing; anything clearly negative is bad data
    if a.size and a.min() < -1e-6 * max(1.0, float(np.abs(a).max())):
        raise InvalidRecordError(f"{what} has negative values (min {a.min():.3g})")
