"""S.U.N.: the fraction of generated crystals that are stable, unique and novel (MatterGen's metric, used in the
DOS-intermediated generation paper's Table 1).

* stable: energy above the convex hull <= ``threshold`` (eV/atom; MatterGen uses 0.1);
* unique: the first of its StructureMatcher group within the generated set (:func:`metrics.diversity.uniqueness`);
* novel: matches no crystal of the reference set, usually the training data (:func:`metrics.diversity.novelty`).

A crystal that failed to generate or relax is none of the three; every rate is over ALL generated crystals.
Which hull the energies come from is the caller's business (``dosmatgen.relax.dataset_phases`` builds one from a
dataset with an MLFF; the papers use DFT energies of Materials Project phases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.diversity import novelty, uniqueness

#: eV/atom above the hull that still counts as stable (MatterGen's S.U.N. threshold).
STABILITY_THRESHOLD_EV = 0.1


@dataclass(frozen=True)
class SunResult:
    e_hull: list[float]
    stable: list[bool]
    unique: list[bool]
    novel: list[bool]
    threshold: float

    @property
    def n(self) -> int:
        return len(self.stable)

    @property
    def sun(self) -> list[bool]:
        return [s and u and v for s, u, v in zip(self.stable, self.unique, self.novel)]

    def rates(self) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "n": self.n, "threshold_ev": self.threshold,
            "stable": sum(self.stable) / n, "unique": sum(self.unique) / n, "novel": sum(self.novel) / n,
            "sun": sum(self.sun) / n, "su": sum(s and u for s, u in zip(self.stable, self.unique)) / n,
            "n_stable": sum(self.stable), "n_unique": sum(self.unique), "n_novel": sum(self.novel), "n_sun": sum(self.sun),
        }


def sun(relaxed: Sequence[Crystal | None], e_hull: Sequence[float], reference: Sequence[Any],
        threshold: float = STABILITY_THRESHOLD_EV, **matcher_kwargs: Any) -> SunResult:
    """S.U.N. of ``relaxed`` crystals (None = failed) with their energies above the hull ``e_hull`` (eV/atom, NaN =
    unknown, counts as unstable) against the ``reference`` set for novelty."""
    if len(relaxed) != len(e_hull):
        raise ValueError(f"{len(e_hull)} hull energies for {len(relaxed)} crystals")
    valid = [c is not None for c in relaxed]
    uniq = uniqueness(relaxed, validity=valid, **matcher_kwargs)
    nov = novelty(relaxed, reference, validity=valid, **matcher_kwargs)
    stable = [bool(ok and math.isfinite(e) and e <= threshold) for ok, e in zip(valid, e_hull)]
    unique = [bool(ok and g == i) for i, (ok, g) in enumerate(zip(valid, uniq.group_of))]
    return SunResult([float(e) for e in e_hull], stable, unique, [bool(v) for v in nov.novel], float(threshold))
