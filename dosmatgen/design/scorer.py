"""The rank stage of a design run: score relaxed candidates by their surrogate total DOS (lower is better).

* property targets: :func:`dosmatgen.dos.property_targets.target_error` (normalised distance to each scalar target,
  plus 1 per failed categorical target: transparent conductor, thermoelectric);
* ``--like``: 1 - cosine similarity to the reference total DOS.
"""

from __future__ import annotations

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.property_targets import PropertyTargets, target_error
from dosmatgen.design.total_dos import SurrogateTotalDOS
from dosmatgen.screen.stages import TargetContext


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (n, D) and (n, D) or (D,); NaN where a row is all zero or NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    norm = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=-1) / norm, np.nan)


class DesignScorer:
    """Scorer contract (:mod:`dosmatgen.screen.stages`) on the surrogate total DOS of the candidates."""

    def __init__(self, predict: SurrogateTotalDOS, targets: PropertyTargets | None = None,
                 reference: np.ndarray | None = None, te_reference: np.ndarray | None = None) -> None:
        if targets is None and reference is None:
            raise ValueError("a design scorer needs property targets or a reference DOS")
        self.predict, self.targets, self.reference, self.te_reference = predict, targets, reference, te_reference

    def __call__(self, crystals: list[Crystal], target: TargetContext, formation_energy: np.ndarray) -> np.ndarray:
        dos = self.predict(crystals)
        ok = np.all(np.isfinite(dos), axis=1)
        scores = np.full(len(crystals), np.nan)
        if not ok.any():
            return scores
        if self.reference is not None:
            scores[ok] = 1.0 - cosine_rows(dos[ok], self.reference)
        else:
            scores[ok] = target_error(dos[ok], self.targets, self.te_reference)  # type: ignore[arg-type]
        return scores


def load_design_scorer(surrogate: str = "bundled:surrogate-small", targets: dict | None = None,
                       reference: list | None = None, te_reference: list | None = None, device: str = "cpu") -> DesignScorer:
    """The rank stage's loader (``module:function`` for :class:`dosmatgen.screen.executors.ShardWork`): plain,
    picklable options (``targets`` as :meth:`PropertyTargets.as_dict`, DOS rows as lists) -> a built scorer."""
    return DesignScorer(SurrogateTotalDOS(surrogate, device=device), None if targets is None else PropertyTargets(**targets),
                        None if reference is None else np.asarray(reference, dtype=np.float64),
                        None if te_reference is None else np.asarray(te_reference, dtype=np.float64))
