"""User targets of property-conditional DOS generation, validated up front.

Units follow dosmatgen/dos/properties.py (the paper's conventions): ``band_gap`` eV (Algorithm 1),
``dos_ef`` states/eV/atom at E_F, ``n_ef`` the Eq. 6 bin sum sum(d[:128]) (states/eV/atom summed over bins;
multiply by dE = 20/255 eV for states/atom). ``tcm`` 1 or 2 asks for a transparent conductor of that type,
``thermoelectric`` for the thermoelectric filter of paper Section 6.2. Numeric targets are met within
``rel_tol`` (relative) or, for a target of 0, within ``zero_abs_tol`` (absolute; paper Table 11 footnote).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dosmatgen.dos.properties import TE_GAP_RANGE_EV
from dosmatgen.errors import DosmatgenError


def _check_number(name: str, value, minimum: float | None = 0.0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DosmatgenError(f"PropertyTargets.{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise DosmatgenError(f"PropertyTargets.{name} must be >= {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class PropertyTargets:
    band_gap: float | None = None
    dos_ef: float | None = None
    n_ef: float | None = None
    tcm: int | None = None
    thermoelectric: bool = False
    rel_tol: float = 0.10
    zero_abs_tol: float = 0.10

    def __post_init__(self) -> None:
        for name in ("band_gap", "dos_ef", "n_ef"):
            _check_number(name, getattr(self, name))
        _check_number("rel_tol", self.rel_tol)
        _check_number("zero_abs_tol", self.zero_abs_tol)
        if self.rel_tol <= 0 or self.zero_abs_tol <= 0:
            raise DosmatgenError(f"PropertyTargets tolerances must be > 0, got rel_tol={self.rel_tol!r}, zero_abs_tol={self.zero_abs_tol!r}")
        if self.tcm is not None and (isinstance(self.tcm, bool) or self.tcm not in (1, 2)):
            raise DosmatgenError(f"PropertyTargets.tcm must be 1 or 2 (transparent-conductor type), got {self.tcm!r}")
        if not isinstance(self.thermoelectric, bool):
            raise DosmatgenError(f"PropertyTargets.thermoelectric must be True or False, got {self.thermoelectric!r}")
        gap, ef = self.band_gap, self.dos_ef
        if gap is not None and gap > 0 and ef is not None and ef > 0:
            raise DosmatgenError(
                f"contradictory targets band_gap={gap} and dos_ef={ef}: a DOS with a band gap at E_F has DOS(E_F) = 0"
            )
        if self.thermoelectric and self.tcm is not None:
            raise DosmatgenError("contradictory targets thermoelectric and tcm: a thermoelectric has a gap at E_F, a transparent conductor a metallic E_F")
        if self.tcm is not None:
            if gap is not None and gap > 0:
                raise DosmatgenError(f"contradictory targets tcm={self.tcm} and band_gap={gap}: a transparent conductor has E_F inside a band (band gap 0; its 3.1 eV gap lies below E_F)")
            if ef is not None and ef == 0:
                raise DosmatgenError(f"contradictory targets tcm={self.tcm} and dos_ef=0: a transparent conductor needs DOS(E_F) > 0")
        if self.thermoelectric:
            lo, hi = TE_GAP_RANGE_EV
            if gap is not None and not lo <= gap <= hi:
                raise DosmatgenError(f"contradictory targets thermoelectric and band_gap={gap}: the thermoelectric filter needs a gap in [{lo}, {hi}] eV")
            if ef is not None and ef > 0:
                raise DosmatgenError(f"contradictory targets thermoelectric and dos_ef={ef}: the thermoelectric filter needs DOS(E_F) = 0")

    @property
    def metallic(self) -> bool:
        """True when the targets imply E_F inside a band (no gap at E_F)."""
        return self.band_gap == 0 or self.tcm is not None or (self.dos_ef is not None and self.dos_ef > self.zero_abs_tol)

    @property
    def gapped(self) -> bool:
        """True when the targets imply a band gap at E_F."""
        return (self.band_gap is not None and self.band_gap > 0) or self.thermoelectric

    @property
    def guided(self) -> dict[str, float]:
        """Targets met by classifier guidance, keyed by regressor output name."""
        out = {}
        if self.dos_ef is not None:
            out["dos_fermi"] = float(self.dos_ef)
        if self.n_ef is not None:
            out["n_fermi"] = float(self.n_ef)
        return out

    def describe(self) -> str:
        parts = [f"{n}={getattr(self, n)}" for n in ("band_gap", "dos_ef", "n_ef", "tcm") if getattr(self, n) is not None]
        if self.thermoelectric:
            parts.append("thermoelectric")
        return ", ".join(parts) or "unconditional"
