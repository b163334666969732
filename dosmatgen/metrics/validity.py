"""Structural and compositional validity of generated crystals (the CDVAE/DiffCSP definitions).

* **Structural**: at least one atom, finite arrays, cell volume >= 0.1 Å³ and every interatomic distance,
  periodic images included (an atom and its own image too), >= 0.5 Å.
* **Compositional**: SMACT (``smact.screening.smact_validity``): some assignment of oxidation states is
  charge neutral and passes the Pauling electronegativity test (cations less electronegative than anions).
  Single-element compositions and all-metal alloys are valid. The oxidation-state table is SMACT's
  ``"smact14"`` set by default, the set DiffCSP's validity used (SMACT's ``Element.oxidation_states``);
  pass ``oxidation_states_set=None`` for SMACT 4's ICSD-24 filtered default.

A missing, empty or NaN structure is invalid in both senses; nothing here raises on bad generated output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from dosmatgen.crystal import MIN_CELL_VOLUME, MIN_INTERATOMIC_DISTANCE, Crystal
from dosmatgen.elements import symbol
from dosmatgen.metrics.inputs import to_crystal_or_none

DEFAULT_OXIDATION_STATES_SET: str | None = "smact14"


@dataclass(frozen=True)
class ValidityCheck:
    """One structure's verdict; ``reason`` says why it failed ("" when valid)."""

    valid: bool
    reason: str = ""


def structural_validity(
    structure: Any, min_distance: float = MIN_INTERATOMIC_DISTANCE, min_volume: float = MIN_CELL_VOLUME
) -> ValidityCheck:
    """Structural validity: non-empty, finite, volume >= ``min_volume`` Å³, all distances >= ``min_distance`` Å."""
    c = to_crystal_or_none(structure)
    if c is None:
        return ValidityCheck(False, "missing, empty or non-finite structure")
    if not c.volume >= min_volume:
        return ValidityCheck(False, f"cell volume {c.volume:.3g} A^3 < {min_volume} A^3")
    try:
        dmin = c.min_interatomic_distance()
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:
        return ValidityCheck(False, f"distance computation failed: {err}")
    if not dmin >= min_distance:
        return ValidityCheck(False, f"closest pair {dmin:.3f} A < {min_distance} A")
    return ValidityCheck(True)


@lru_cache(maxsize=65536)
def _smact_valid(formula_counts: tuple[tuple[str, int], ...], use_pauling_test: bool, oxidation_states_set: str | None) -> bool:
    from pymatgen.core import Composition
    from smact.screening import smact_validity

    return bool(
        smact_validity(
            Composition(dict(formula_counts)),
            use_pauling_test=use_pauling_test,
            include_alloys=True,
            oxidation_states_set=oxidation_states_set,
        )
    )


def compositional_validity(
    structure: Any,
    *,
    use_pauling_test: bool = True,
    oxidation_states_set: str | None = DEFAULT_OXIDATION_STATES_SET,
) -> ValidityCheck:
    """SMACT charge neutrality + Pauling electronegativity (single elements and all-metal alloys valid)."""
    c = to_crystal_or_none(structure)
    if c is None:
        return ValidityCheck(False, "missing, empty or non-finite structure")
    z, counts = np.unique(c.atomic_numbers, return_counts=True)
    g = int(np.gcd.reduce(counts))
    key = tuple((symbol(int(a)), int(n // g)) for a, n in zip(z, counts))
    try:
        ok = _smact_valid(key, use_pauling_test, oxidation_states_set)
    except (ValueError, KeyError, TypeError) as err:
        return ValidityCheck(False, f"SMACT could not assess {key}: {err}")
    formula = "".join(f"{s}{n if n > 1 else ''}" for s, n in key)
    return ValidityCheck(True) if ok else ValidityCheck(False, f"{formula}: no charge-neutral, electronegativity-ordered oxidation states")


@dataclass(frozen=True)
class ValiditySummary:
    """Validity rates over ``n`` structures (``valid`` = structurally AND compositionally valid)."""

    n: int
    n_missing: int
    structural_rate: float
    compositional_rate: float
    valid_rate: float
    structural: list[bool] = field(repr=False)
    compositional: list[bool] = field(repr=False)
    reasons: list[str] = field(repr=False)

    @property
    def valid(self) -> list[bool]:
        return [a and b for a, b in zip(self.structural, self.compositional)]

    def to_dict(self, with_details: bool = False) -> dict:
        d = asdict(self)
        if not with_details:
            for k in ("structural", "compositional", "reasons"):
                d.pop(k)
        return d


def validity_summary(structures: Sequence[Any], **compositional_kwargs: Any) -> ValiditySummary:
    """Structural, compositional and joint validity rates; missing/empty/NaN structures count as invalid."""
    structural, compositional, reasons = [], [], []
    n_missing = 0
    for s in structures:
        c = to_crystal_or_none(s)
        n_missing += c is None
        sv = structural_validity(c)
        cv = compositional_validity(c, **compositional_kwargs)
        structural.append(sv.valid)
        compositional.append(cv.valid)
        reasons.append("; ".join(r for r in (sv.reason, cv.reason) if r))
    n = len(structural)

    def rate(v: list[bool]) -> float:
        return float(np.mean(v)) if n else float("nan")

    return ValiditySummary(
        n=n,
        n_missing=n_missing,
        structural_rate=rate(structural),
        compositional_rate=rate(compositional),
        valid_rate=rate([a and b for a, b in zip(structural, compositional)]),
        structural=structural,
        compositional=compositional,
        reasons=reasons,
    )
