"""The property targets of ``dosmatgen design`` and the test whether a total DOS meets them.

Properties are those of the DOS-intermediated generation paper, on the per-atom total DOS (TOTAL_GRID,
states/eV/atom), computed by :mod:`dosmatgen.dos.properties`:

* band gap: Algorithm 1 (:func:`~dosmatgen.dos.properties.band_gap_soft`), eV;
* DOS(E_F): :func:`~dosmatgen.dos.properties.dos_at_fermi`, states/eV/atom;
* N(E_F): the paper's Eq. 6 bin sum (:func:`~dosmatgen.dos.properties.integrated_dos_bins`);
* transparent conductor type 1/2: :func:`~dosmatgen.dos.properties.transparent_conductor_mask`;
* thermoelectric: :func:`~dosmatgen.dos.properties.thermoelectric_mask` when a reference DOS is known (the paper's
  cosine > 0.9 criterion), else its criteria (1) gap in [0.1, 1.0] eV and (2) DOS(E_F) = 0 only.

A scalar target y* is met when |y - y*| <= rel_tol * |y*|, or |y| <= zero_abs_tol when y* = 0 (paper Table 11).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dosmatgen.dos import properties as P
from dosmatgen.dos.properties import within_tolerance  # noqa: F401  (re-exported)
from dosmatgen.errors import DosmatgenError


class DesignTargetError(DosmatgenError):
    """Bad or contradictory design targets; the message names the command-line flag."""


#: target name -> (command-line flag, property function on (n, 256) total DOS)
SCALAR_TARGETS = {
    "band_gap": ("--band-gap", P.band_gap_soft),
    "dos_ef": ("--dos-ef", P.dos_at_fermi),
    "n_ef": ("--n-ef", P.integrated_dos_bins),
}


@dataclass(frozen=True)
class DesignTargets:
    """What the user asks for. Validated on construction (:class:`DesignTargetError` naming the flag)."""

    band_gap: float | None = None
    dos_ef: float | None = None
    n_ef: float | None = None
    tcm: int | None = None
    thermoelectric: bool = False
    rel_tol: float = 0.10
    zero_abs_tol: float = 0.10

    def __post_init__(self) -> None:
        for name, (flag, _) in SCALAR_TARGETS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not np.isfinite(value):
                raise DesignTargetError(f"{flag} must be a finite number, got {value}")
            if value < 0:
                raise DesignTargetError(f"{flag} must be >= 0, got {value}")
        if self.tcm is not None and self.tcm not in (1, 2):
            raise DesignTargetError(f"--tcm must be 1 or 2, got {self.tcm}")
        if not 0 < self.rel_tol < 1:
            raise DesignTargetError(f"--rel-tol must lie in (0, 1), got {self.rel_tol}")
        if not self.zero_abs_tol > 0:
            raise DesignTargetError(f"--zero-abs-tol must be > 0, got {self.zero_abs_tol}")
        if not self.any():
            raise DesignTargetError("no target: give at least one of --band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric (or --like REF.cif)")
        gap, dos_ef = self.band_gap, self.dos_ef
        if gap is not None and gap > 0 and dos_ef is not None and dos_ef > 0:
            raise DesignTargetError(f"--band-gap {gap} with --dos-ef {dos_ef}: a crystal with a band gap at E_F has DOS(E_F) = 0 "
                                    "(a metal has no gap); drop one of them")
        if self.tcm is not None and self.thermoelectric:
            raise DesignTargetError("--tcm with --thermoelectric: a transparent conductor has DOS(E_F) > 0, a thermoelectric "
                                    "DOS(E_F) = 0; choose one")
        if self.tcm is not None:
            if gap is not None and gap > 0:
                raise DesignTargetError(f"--tcm with --band-gap {gap}: a transparent conductor is metallic at E_F (band gap 0); "
                                        "its gap lies below E_F")
            if dos_ef is not None and dos_ef == 0:
                raise DesignTargetError("--tcm with --dos-ef 0: a transparent conductor needs DOS(E_F) > 0")
        if self.thermoelectric:
            lo, hi = P.TE_GAP_RANGE_EV
            if gap is not None and not lo <= gap <= hi:
                raise DesignTargetError(f"--thermoelectric with --band-gap {gap}: thermoelectrics have a gap in [{lo}, {hi}] eV")
            if dos_ef is not None and dos_ef > 0:
                raise DesignTargetError(f"--thermoelectric with --dos-ef {dos_ef}: thermoelectrics have DOS(E_F) = 0")

    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in SCALAR_TARGETS) or self.tcm is not None or self.thermoelectric

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = [f"{flag} {getattr(self, k)}" for k, (flag, _) in SCALAR_TARGETS.items() if getattr(self, k) is not None]
        if self.tcm is not None:
            parts.append(f"--tcm {self.tcm}")
        if self.thermoelectric:
            parts.append("--thermoelectric")
        return " ".join(parts)

    def to_sampler_targets(self):
        """The same targets as :class:`dosmatgen.dos_sampler.PropertyTargets` (imported here, lazily)."""
        from dosmatgen.dos_sampler import PropertyTargets

        return PropertyTargets(band_gap=self.band_gap, dos_ef=self.dos_ef, n_ef=self.n_ef, tcm=self.tcm,
                               thermoelectric=self.thermoelectric, rel_tol=self.rel_tol, zero_abs_tol=self.zero_abs_tol)


def target_properties(dos: np.ndarray) -> dict[str, np.ndarray]:
    """band_gap, dos_ef and n_ef of every row of ``dos`` (n, 256)."""
    return {name: np.asarray(fn(dos), dtype=np.float64) for name, (_, fn) in SCALAR_TARGETS.items()}


def meets_targets(dos: np.ndarray, targets: DesignTargets, te_reference: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: which rows of ``dos`` (n, 256) meet every target (module docstring for the definitions)."""
    d = np.asarray(dos, dtype=np.float64)
    props = target_properties(d)
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
        else:
            lo, hi = P.TE_GAP_RANGE_EV
            eg = props["band_gap"]
            ok &= (eg >= lo) & (eg <= hi) & (props["dos_ef"] <= P.ZERO_DOS_THRESHOLD)
    return ok


def target_error(dos: np.ndarray, targets: DesignTargets, te_reference: np.ndarray | None = None) -> np.ndarray:
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
        categorical = DesignTargets(tcm=targets.tcm, thermoelectric=targets.thermoelectric)
        score += (~meets_targets(d, categorical, te_reference)).astype(np.float64)
    return score
