"""DOS match over ALL conditioned sites: the surrogate's site DOS of the generated structures vs the condition.

Every site of every test structure conditions the generation, so every site is scored: with ``y`` the scaled
condition (n_i, 400) of structure i, ``ŷ`` the surrogate on the true structure and ``ŷ_gen`` the surrogate on
the generated one (atom k of the generated structure ↔ atom k of the true one), the rows of all structures are
stacked and handed to :func:`dosmatgen.metrics.dos_match.dos_match_mae` (MAE on the **surrogate's** scaled
features, mean over bins then over sites — the paper's definition) and
:func:`~dosmatgen.metrics.dos_match.dos_similarity` (unscaled). A generated structure that is missing or
non-finite contributes NaN rows, counted as ``n_undefined`` and left out of the means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.evaluation.bootstrap import dos_match_intervals
from dosmatgen.metrics.dos_match import dos_match_mae, dos_similarity, mae_rows, site_dos_mae
from dosmatgen.metrics.inputs import to_crystal_or_none
from dosmatgen.surrogate.predict import SurrogatePredictor


def site_rows(predictor: SurrogatePredictor, structures: Sequence[Crystal | None], num_atoms: Sequence[int]) -> np.ndarray:
    """(Σ num_atoms, 400) scaled surrogate site DOS, structure after structure.

    A structure that is missing, unusable or has a different atom count than ``num_atoms[i]`` gives NaN rows.
    """
    n = np.asarray(num_atoms, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n)])
    rows = np.full((int(offsets[-1]), predictor.grid.n), np.nan)
    usable = []
    for i, s in enumerate(structures):
        c = to_crystal_or_none(s)
        if c is not None and c.num_atoms == n[i]:
            usable.append((i, c))
    if usable:
        preds = predictor.predict_scaled([c for _, c in usable])
        for (i, _), p in zip(usable, preds):
            rows[offsets[i] : offsets[i + 1]] = p
    return rows


@dataclass
class ReferenceDOS:
    """What every setting is compared with: the scaled condition y and the surrogate on the true structures ŷ,
    both (Σ n_i, 400) in the surrogate's scaled space, and the atom counts n_i."""

    num_atoms: np.ndarray
    target_scaled: np.ndarray
    predicted_scaled: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.num_atoms)])


def reference_dos(predictor: SurrogatePredictor, crystals: Sequence[Crystal], site_dos_unscaled: Sequence[np.ndarray]) -> ReferenceDOS:
    n = np.array([c.num_atoms for c in crystals], dtype=np.int64)
    y = predictor.scaler.transform(np.concatenate(list(site_dos_unscaled), axis=0))
    return ReferenceDOS(n, np.asarray(y, dtype=np.float64), site_rows(predictor, crystals, n))


def surrogate_intrinsic_error(predictor: SurrogatePredictor, ref: ReferenceDOS, seed: int = 0) -> dict:
    """MAE(ŷ, y) on the conditioning set's sites (the paper's 0.096), with its random-pair baseline."""
    return site_dos_mae(ref.predicted_scaled, ref.target_scaled, seed=seed, name="mae_pred_ref_vs_target").to_dict()


def per_structure_mae(pred: np.ndarray, target: np.ndarray, offsets: np.ndarray) -> list[float]:
    """Mean over each structure's sites of the per-site MAE (NaN for a structure without a usable prediction)."""
    per_site = mae_rows(pred, target)
    out = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        v = per_site[a:b]
        out.append(float(v.mean()) if v.size and np.all(np.isfinite(v)) else float("nan"))
    return out


def site_dos_match(predictor: SurrogatePredictor, generated: Sequence[Crystal | None], ref: ReferenceDOS, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Metrics dict (``dos_match``, ``dos_match_bootstrap`` (95 % intervals, :mod:`~dosmatgen.evaluation.bootstrap`),
    ``dos_similarity``, ``n_sites``, ``per_structure_mae_gen_vs_target``) and the (Σ n_i, 400) scaled rows ŷ_gen
    (for the plots)."""
    y_gen = site_rows(predictor, generated, ref.num_atoms)
    match = {k: m.to_dict() for k, m in dos_match_mae(y_gen, ref.target_scaled, ref.predicted_scaled, seed=seed).items()}
    unscale = predictor.scaler.inverse_transform
    similarity = {k: m.to_dict() for k, m in dos_similarity(unscale(y_gen), unscale(ref.target_scaled), seed=seed).items()}
    return {
        "dos_match": match,
        "dos_match_bootstrap": dos_match_intervals(y_gen, ref.target_scaled, ref.offsets, seed=seed),
        "dos_similarity": similarity,
        "n_sites": int(ref.num_atoms.sum()),
        "per_structure_mae_gen_vs_target": per_structure_mae(y_gen, ref.target_scaled, ref.offsets),
    }, y_gen
