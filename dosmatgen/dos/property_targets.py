"""Property targets on a per-atom total DOS, and the test whether a DOS meets them (one definition for the
DOSSampler, ``dosmatgen design`` and ``dosmatgen rank``).

Properties are those of the DOS-intermediated generation paper, on the per-atom total DOS (TOTAL_GRID,
states/eV/atom), computed by :mod:`dosmatgen.dos.properties`:

* ``band_gap``: Algorithm 1 (:func:`~dosmatgen.dos.properties.band_gap_soft`), eV;
* ``dos_ef``: DOS(E_F), :func:`~dosmatgen.dos.properties.dos_at_fermi`, states/eV/atom;
* ``n_ef``: N(E_F), the paper's Eq. 6 bin sum sum(d[:128]) (:func:`~dosmatgen.dos.properties.integrated_dos_bins`;
  multiply by dE = 20/255 eV for states/atom);
* ``tcm`` 1 or 2: transparent conductor of that type (:func:`~dosmatgen.dos.properties.transparent_conductor_mask`);
* ``thermoelectric``: :func:`~dosmatgen.dos.properties.thermoelectric_mask` when a reference thermoelectric DOS is
  known (the paper's cosine > 0.9 criterion, Section 6.2), else its criteria (1) gap in [0.1, 1.0] eV and
  (2) DOS(E_F) = 0 only (callers that need the reference pass ``require_te_reference``).

A scalar target y* is met when |y - y*| <= rel_tol * |y*|, or |y| <= zero_abs_tol when y* = 0 (paper Table 11).
Errors name the Python field and its command-line flag, e.g. ``band_gap (--band-gap)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dosmatgen.dos import properties as P
from dosmatgen.dos.properties import within_tolerance
from dosmatgen.errors import DosmatgenError


class PropertyTargetError(DosmatgenError):
    """Bad or contradictory property targets; the message names the field and its command-line flag."""


#: scalar target name -> (command-line flag, property function on (n, 256) total DOS)
SCALAR_TARGETS = {
    "band_gap": ("--band-gap", P.band_gap_soft),
    "dos_ef": ("--dos-ef", P.dos_at_fermi),
    "n_ef": ("--n-ef", P.integrated_dos_bins),
}
FLAGS = {**{k: flag for k, (flag, _) in SCALAR_TARGETS.items()}, "tcm": "--tcm", "thermoelectric": "--thermoelectric",
         "rel_tol": "--rel-tol", "zero_abs_tol": "--zero-abs-tol"}  # fmt: skip


def _name(field: str) -> str:
    return f"{field} ({FLAGS[field]})"


def _check_number(field: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PropertyTargetError(f"{_name(field)} must be a finite number, got {value!r}")
    if value < 0:
        raise PropertyTargetError(f"{_name(field)} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class PropertyTargets:
    """What the user asks for; all fields optional (none: unconditional). Validated on construction."""

    band_gap: float | None = None
    dos_ef: float | None = None
    n_ef: float | None = None
    tcm: int | None = None
    thermoelectric: bool = False
    rel_tol: float = 0.10
    zero_abs_tol: float = 0.10

    def __post_init__(self) -> None:
        for field in (*SCALAR_TARGETS, "rel_tol", "zero_abs_tol"):
            _check_number(field, getattr(self, field))
        if not 0 < self.rel_tol < 1:
            raise PropertyTargetError(f"tolerances: {_name('rel_tol')} must lie in (0, 1), got {self.rel_tol!r}")
        if not self.zero_abs_tol > 0:
            raise PropertyTargetError(f"tolerances: {_name('zero_abs_tol')} must be > 0, got {self.zero_abs_tol!r}")
        if self.tcm is not None and (isinstance(self.tcm, bool) or self.tcm not in (1, 2)):
            raise PropertyTargetError(f"{_name('tcm')} must be 1 or 2 (transparent-conductor type), got {self.tcm!r}")
        if not isinstance(self.thermoelectric, bool):
            raise PropertyTargetError(f"{_name('thermoelectric')} must be True or False, got {self.thermoelectric!r}")
        gap, ef = self.band_gap, self.dos_ef
        if gap is not None and gap > 0 and ef is not None and ef > 0:
            raise PropertyTargetError(f"contradictory targets band_gap={gap} and dos_ef={ef} (--band-gap, --dos-ef): a crystal "
                                      "with a band gap at E_F has DOS(E_F) = 0 (a metal has no gap); drop one of them")
        if self.tcm is not None and self.thermoelectric:
            raise PropertyTargetError("contradictory targets thermoelectric and tcm (--thermoelectric, --tcm): a transparent "
                                      "conductor has DOS(E_F) > 0, a thermoelectric DOS(E_F) = 0; choose one")
        if self.tcm is not None:
            if gap is not None and gap > 0:
                raise PropertyTargetError(f"contradictory targets tcm={self.tcm} and band_gap={gap} (--tcm, --band-gap): a "
                                          "transparent conductor is metallic at E_F (band gap 0); its gap lies below E_F")
            if ef is not None and ef == 0:
                raise PropertyTargetError(f"contradictory targets tcm={self.tcm} and dos_ef=0 (--tcm, --dos-ef): a transparent "
                                          "conductor needs DOS(E_F) > 0")
        if self.thermoelectric:
            lo, hi = P.TE_GAP_RANGE_EV
            if gap is not None and not lo <= gap <= hi:
                raise PropertyTargetError(f"contradictory targets thermoelectric and band_gap={gap} (--thermoelectric, "
                                          f"--band-gap): thermoelectrics have a gap in [{lo}, {hi}] eV")
            if ef is not None and ef > 0:
                raise PropertyTargetError(f"contradictory targets thermoelectric and dos_ef={ef} (--thermoelectric, --dos-ef): "
                                          "thermoelectrics have DOS(E_F) = 0")

    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in SCALAR_TARGETS) or self.tcm is not None or self.thermoelectric

    def require_any(self) -> PropertyTargets:
        """``self``, or PropertyTargetError when no target is set (a design or a property ranking needs one)."""
        if not self.any():
            raise PropertyTargetError("no target: give at least one of --band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric")
        return self

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
        """Targets met by the DOSSampler's classifier guidance, keyed by regressor output name."""
        out = {}
        if self.dos_ef is not None:
            out["dos_fermi"] = float(self.dos_ef)
        if self.n_ef is not None:
            out["n_fermi"] = float(self.n_ef)
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """The targets as command-line flags, e.g. ``--band-gap 2.0 --n-ef 2.0`` ("unconditional" when none)."""
        parts = [f"{flag} {getattr(self, k)}" for k, (flag, _) in SCALAR_TARGETS.items() if getattr(self, k) is not None]
        if self.tcm is not None:
            parts.append(f"--tcm {self.tcm}")
        if self.thermoelectric:
            parts.append("--thermoelectric")
        return " ".join(parts) or "unconditional"


def target_properties(dos: np.ndarray) -> dict[str, np.ndarray]:
    """band_gap, dos_ef and n_ef of every row of ``dos`` (n, 256)."""
    return {name: np.asarray(fn(dos), dtype=np.float64) for name, (_, fn) in SCALAR_TARGETS.items()}


def meets_targets(dos: np.ndarray, targets: PropertyTargets, te_reference: np.ndarray | None = None, *,
                  require_te_reference: bool = False, properties: dict[str, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """(n,) bool: which rows of ``dos`` (n, 256) meet every target (module docstring for the definitions).
    ``properties``: precomputed :func:`target_properties` of ``dos``."""
    d = np.asarray(dos, dtype=np.float64)
    props = target_properties(d) if properties is None else properties
    ok = np.ones(d.shape[0], dtype=bool)
    for name in SCALAR_TARGETS:
        want = getattr(targets, name)
        if want is not None:
            ok &= within_tolerance(props[name], want, targets.rel_tol, targets.zero_abs_tol)
    if targets.tcm is not None:
        ok &= P.transparent_conductor_mask(d, targets.tcm)
    if targets.thermoelectric:
        if te_reference is not None:
            ok &= P.thermoelectric_mask(d, te_reference)
        elif require_te_reference:
            raise PropertyTargetError("the thermoelectric target needs a reference thermoelectric DOS (the cosine > 0.9 "
                                      "criterion of paper Section 6.2), and none was given")
        else:
            lo, hi = P.TE_GAP_RANGE_EV
            eg = props["band_gap"]
            ok &= (eg >= lo) & (eg <= hi) & (props["dos_ef"] <= P.ZERO_DOS_THRESHOLD)
    return ok


def target_error(dos: np.ndarray, targets: PropertyTargets, te_reference: np.ndarray | None = None) -> np.ndarray:
    """(n,) ranking score, lower is better: the sum over scalar targets of |y - y*| / max(|y*|, zero_abs_tol),
    plus 1 for each row that fails a categorical target (tcm, thermoelectric)."""
    d = np.asarray(dos, dtype=np.float64)
    props = target_properties(d)
    score = np.zeros(d.shape[0])
    for name in SCALAR_TARGETS:
        want = getattr(targets, name)
        if want is not None:
            score += np.abs(props[name] - want) / max(abs(want), targets.zero_abs_tol)
    if targets.tcm is not None or targets.thermoelectric:
        categorical = PropertyTargets(tcm=targets.tcm, thermoelectric=targets.thermoelectric)
        score += (~meets_targets(d, categorical, te_reference)).astype(np.float64)
    return score
