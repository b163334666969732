"""DOS agreement between generated and target structures, each metric paired with its random-pair baseline.

The protocol of DOSMatGen: a test structure with site DOS ``y`` (one conditioned site) is generated from;
the forward surrogate predicts the site DOS of the *generated* structure, ``ŷ_gen``, at the conditioned
site (same atom index) and of the *ground-truth* structure, ``ŷ``.

* ``MAE(ŷ_gen, y)`` — error of the generated structure against the condition (paper: 0.102 CFG at t_start 200).
* ``MAE(ŷ_gen, ŷ)`` — the same against the surrogate's own prediction for the true structure, which removes
  the surrogate's intrinsic error ``MAE(ŷ, y)`` (paper: 0.096) from the comparison.

Both MAEs are computed on **scaled** features: the 400-bin site DOS on ``SITE_GRID`` after the per-bin
standard scaler fitted on the training atoms (``(x - mean) / (std + 1e-5)``), averaged over bins and then over
conditioned sites — the paper's definition. Similarity metrics (cosine, Pearson, Jensen–Shannon) and the
DOS-derived properties (band gap, DOS(E_F), N(E_F); by default on the per-atom total DOS on ``TOTAL_GRID`` as in
the DOS-intermediated paper) use the **unscaled**, non-negative DOS (states/eV); small negative values from a
surrogate are clipped to 0 first.

Every metric comes with the random-pair baseline: the same metric with sample i paired to sample ``p[i]``,
``p`` a seeded derangement (see :mod:`dosmatgen.metrics.derangement`). Rows containing NaN (a generated
structure that could not be evaluated) are left out and counted as ``n_undefined``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
from scipy.special import rel_entr

from dosmatgen.dos.grid import TOTAL_GRID, EnergyGrid
from dosmatgen.metrics.inputs import MetricInputError, as_matching_2d
from dosmatgen.metrics.paired import PairedMetric, paired_metric

SCALED_FEATURES = "scaled 400-bin site DOS (per-bin standard scaler fitted on training atoms), mean over bins"
UNSCALED_FEATURES = "unscaled site DOS (states/eV), negatives clipped to 0"
NORMALISED_FEATURES = "unscaled site DOS (states/eV), negatives clipped to 0, normalised to unit area"


# ----------------------------------------------------------------------------- per-row metrics
def mae_rows(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(M,) mean absolute error over the last axis of (M, K) arrays."""
    return np.abs(pred - target).mean(axis=-1)


def cosine_rows(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(M,) cosine similarity of non-negative rows (NaN where a row is all zero). 1 = same shape."""
    a, b = np.clip(pred, 0.0, None), np.clip(target, 0.0, None)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(axis=-1) / (na * nb)
    out[(na == 0) | (nb == 0)] = np.nan
    return out


def pearson_rows(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(M,) Pearson correlation of rows (NaN where a row is constant)."""
    a = pred - pred.mean(axis=-1, keepdims=True)
    b = target - target.mean(axis=-1, keepdims=True)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(axis=-1) / (na * nb)
    out[(na == 0) | (nb == 0)] = np.nan
    return out


def unit_area(rows: np.ndarray) -> np.ndarray:
    """Rows clipped to >= 0 and divided by their sum (on a uniform grid: unit area up to the constant ΔE).

    Rows with zero area become NaN.
    """
    a = np.clip(rows, 0.0, None)
    s = a.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = a / s
    out[(s[..., 0] == 0)] = np.nan
    return out


def js_divergence_rows(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(M,) Jensen–Shannon divergence (base 2, in [0, 1]; 0 = identical) of the unit-area rows."""
    p, q = unit_area(pred), unit_area(target)
    m = 0.5 * (p + q)
    js = 0.5 * rel_entr(p, m).sum(axis=-1) + 0.5 * rel_entr(q, m).sum(axis=-1)
    return np.clip(js / np.log(2.0), 0.0, 1.0) if js.size else js


# ----------------------------------------------------------------------------- public metrics
def site_dos_mae(pred_scaled: np.ndarray, target_scaled: np.ndarray, *, seed: int = 0, name: str = "dos_mae") -> PairedMetric:
    """MAE on scaled site-DOS features (M, 400) with its random-pair baseline (the paper's DOS MAE)."""
    p, t = as_matching_2d(pred_scaled, target_scaled, ("predicted (scaled) DOS", "target (scaled) DOS"))
    return paired_metric(name, mae_rows, p, t, lower_is_better=True, features=SCALED_FEATURES, seed=seed)


def dos_match_mae(
    pred_generated_scaled: np.ndarray,
    target_scaled: np.ndarray,
    pred_reference_scaled: np.ndarray | None = None,
    *,
    seed: int = 0,
) -> dict[str, PairedMetric]:
    """The paper's two DOS-match numbers on the conditioned sites (all inputs (M, 400) scaled).

    Returns ``{"mae_gen_vs_target": MAE(ŷ_gen, y)}`` and, when ``pred_reference_scaled`` (the surrogate on the
    ground-truth structures) is given, also ``"mae_gen_vs_pred_ref"``: MAE(ŷ_gen, ŷ) and the surrogate's
    intrinsic ``"mae_pred_ref_vs_target"``: MAE(ŷ, y).
    """
    out = {"mae_gen_vs_target": site_dos_mae(pred_generated_scaled, target_scaled, seed=seed, name="mae_gen_vs_target")}
    if pred_reference_scaled is not None:
        out["mae_gen_vs_pred_ref"] = site_dos_mae(
            pred_generated_scaled, pred_reference_scaled, seed=seed, name="mae_gen_vs_pred_ref"
        )
        out["mae_pred_ref_vs_target"] = site_dos_mae(
            pred_reference_scaled, target_scaled, seed=seed, name="mae_pred_ref_vs_target"
        )
    return out


def dos_similarity(pred_unscaled: np.ndarray, target_unscaled: np.ndarray, *, seed: int = 0) -> dict[str, PairedMetric]:
    """Cosine similarity, Pearson correlation and JS divergence of unscaled DOS rows (M, K), with baselines."""
    p, t = as_matching_2d(pred_unscaled, target_unscaled, ("predicted DOS", "target DOS"))
    return {
        "cosine": paired_metric("cosine", cosine_rows, p, t, lower_is_better=False, features=UNSCALED_FEATURES, seed=seed),
        "pearson": paired_metric("pearson", pearson_rows, p, t, lower_is_better=False, features=UNSCALED_FEATURES, seed=seed),
        "js_divergence": paired_metric(
            "js_divergence", js_divergence_rows, p, t, lower_is_better=True, features=NORMALISED_FEATURES, seed=seed
        ),
    }


#: A DOS-derived property, vectorised: (M, K) unscaled non-negative DOS rows and their grid -> (M,) values.
PropertyFn = Callable[[np.ndarray, EnergyGrid], np.ndarray]


def default_property_functions() -> dict[str, PropertyFn]:
    """The DOS-intermediated paper's properties, from :mod:`dosmatgen.dos.properties` (paper convention).

    ``band_gap``: Algorithm 1 (soft mask, k = 10), eV; ``dos_fermi``: DOS(E_F) = mean of the two bins around
    E_F, states/eV(/atom); ``n_fermi``: N(E_F) by Eq. 6, the bin sum below E_F (no ΔE).
    """
    from dosmatgen.dos import properties as props

    return {
        "band_gap": lambda d, g: props.band_gap_soft(d, grid=g),
        "dos_fermi": lambda d, g: props.dos_at_fermi(d, grid=g),
        "n_fermi": lambda d, g: props.integrated_dos_bins(d, grid=g),
    }


def property_values(dos_rows: np.ndarray, grid: EnergyGrid, fn: PropertyFn) -> np.ndarray:
    """(M,) property of each unscaled DOS row, negatives clipped to 0; NaN for rows with non-finite values."""
    out = np.full(dos_rows.shape[0], np.nan)
    ok = np.isfinite(dos_rows).all(axis=-1)
    if ok.any():
        out[ok] = np.asarray(fn(np.clip(dos_rows[ok], 0.0, None), grid), dtype=np.float64).reshape(-1)
    return out


def dos_property_errors(
    pred_unscaled: np.ndarray,
    target_unscaled: np.ndarray,
    *,
    grid: EnergyGrid = TOTAL_GRID,
    properties: Mapping[str, PropertyFn] | None = None,
    seed: int = 0,
) -> dict[str, PairedMetric]:
    """MAE of DOS-derived properties between predicted and target unscaled DOS rows (M, grid.n), with baselines.

    The paper computes these on the per-atom total DOS on ``TOTAL_GRID`` (256 bins, states/eV/atom), the
    default; any grid symmetric about E_F with an even number of bins works (e.g. ``SITE_GRID`` for site DOS,
    where the soft band gap's k = 10 refers to a different bin width and is therefore not the paper's number).
    """
    p, t = as_matching_2d(pred_unscaled, target_unscaled, ("predicted DOS", "target DOS"))
    if p.shape[1] != grid.n:
        raise MetricInputError(f"DOS rows have {p.shape[1]} bins but the energy grid has {grid.n} points")
    fns = dict(properties) if properties is not None else default_property_functions()
    out: dict[str, PairedMetric] = {}
    for name, fn in fns.items():
        pv, tv = property_values(p, grid, fn), property_values(t, grid, fn)
        out[name] = paired_metric(
            f"{name}_mae",
            lambda a, b: np.abs(a - b),
            pv,
            tv,
            lower_is_better=True,
            features=f"{name} of the unscaled DOS (negatives clipped to 0) on a {grid.n}-point grid [{grid.emin}, {grid.emax}] eV",
            seed=seed,
        )
    return out
