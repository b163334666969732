"""All generation metrics for one protocol setting (one t_start × guidance), composed from the metric modules.

A protocol runner (``dosmatgen evaluate``) only has to generate, then call :func:`generation_metrics` once per
setting and dump ``result`` dicts: nothing else is computed there.

Inputs, one entry per conditioned test sample i:

* ``generated[i]``: the generated structure (Crystal, pymatgen, raw arrays; None/empty/NaN = failed generation);
* ``references[i]``: the ground-truth test structure whose site DOS conditioned the generation;
* ``site_index[i]``: the conditioned site (same atom index in the generated structure, as in DOSMatGen);
* ``target_scaled[i]``: the condition y, scaled site DOS (400,) of that site;
* ``surrogate``: anything with ``predict_sites(structures, site_index, scaled=True) -> (M, 400)`` and a ``scaler``
  (:class:`~dosmatgen.surrogate.predict.SurrogatePredictor`).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from dosmatgen.metrics.diversity import novelty, uniqueness
from dosmatgen.metrics.dos_match import dos_match_mae, dos_similarity
from dosmatgen.metrics.inputs import MetricInputError, check_same_length
from dosmatgen.metrics.structure_match import composition_match_rate, structure_match_rate
from dosmatgen.metrics.timed_matcher import DEFAULT_TIMEOUT_S, TimedStructureMatcher
from dosmatgen.metrics.validity import validity_summary


class SitePredictor(Protocol):
    scaler: Any

    def predict_sites(self, structures: Sequence[Any], site_index: Sequence[int], *, scaled: bool = True) -> np.ndarray: ...


def generation_metrics(
    generated: Sequence[Any],
    references: Sequence[Any],
    site_index: Sequence[int],
    target_scaled: np.ndarray,
    surrogate: SitePredictor | None = None,
    *,
    training_structures: Sequence[Any] | None = None,
    seed: int = 0,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    structure_outcomes: bool = False,
) -> dict[str, Any]:
    """JSON-ready dict of every metric for one setting (see the module docstring for the inputs).

    Keys: ``n``, ``validity``, ``structure_match``, ``composition_match``, ``uniqueness``, ``novelty`` (when
    ``training_structures`` is given) and, with a surrogate, ``dos_match`` (MAE(ŷ_gen, y), MAE(ŷ_gen, ŷ),
    MAE(ŷ, y) on scaled features) and ``dos_similarity`` (cosine, Pearson, JS on unscaled DOS), each with its
    random-pair baseline. ``structure_outcomes`` also keeps each pair's match outcome (``structure_match.outcomes``).
    """
    check_same_length(generated, references, ("generated structures", "reference structures"))
    check_same_length(generated, site_index, ("generated structures", "conditioned-site indices"))
    y = np.asarray(target_scaled, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != len(generated):
        raise MetricInputError(f"target_scaled must have one row per sample: shape {y.shape} for {len(generated)} samples")
    out: dict[str, Any] = {"n": len(generated), "seed": int(seed)}
    val = validity_summary(generated)
    out["validity"] = val.to_dict()
    out["composition_match"] = composition_match_rate(generated, references).to_dict()
    with TimedStructureMatcher(timeout_s=timeout_s) as matcher:
        out["structure_match"] = structure_match_rate(generated, references, matcher=matcher).to_dict(with_outcomes=structure_outcomes)
        out["uniqueness"] = uniqueness(generated, validity=val.valid, matcher=matcher).to_dict()
        if training_structures is not None:
            out["novelty"] = novelty(generated, training_structures, validity=val.valid, matcher=matcher).to_dict()
    if surrogate is not None:
        y_gen = surrogate.predict_sites(generated, site_index, scaled=True)
        y_ref = surrogate.predict_sites(references, site_index, scaled=True)
        out["dos_match"] = {k: m.to_dict() for k, m in dos_match_mae(y_gen, y, y_ref, seed=seed).items()}
        unscale = surrogate.scaler.inverse_transform
        out["dos_similarity"] = {k: m.to_dict() for k, m in dos_similarity(unscale(y_gen), unscale(y), seed=seed).items()}
    return out
