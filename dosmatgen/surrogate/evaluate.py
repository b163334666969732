"""Intrinsic error of the surrogate, MAE(ŷ, y), on a split of a dataset store, next to the baselines.

All MAEs are on the **scaled** features (per-bin standard scaler of the checkpoint, fitted on the training
atoms), averaged over bins and over all target rows (every site of every structure of the split for the site
surrogate; every structure for the total-DOS surrogate) — the number the DOSMatGen paper reports as 0.096.
The unscaled MAE (states/eV per site, or per atom) is reported too. Baselines are fitted on ``baseline_split``
(the training split) of the same store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dosmatgen.data.store import DatasetStore
from dosmatgen.errors import StoreError
from dosmatgen.surrogate.baselines import CompositionMeanBaseline, MeanDOSBaseline, PerElementMeanBaseline
from dosmatgen.surrogate.predict import SurrogatePredictor


@dataclass(frozen=True)
class SurrogateEvaluation:
    split: str
    target: str
    n_structures: int
    n_rows: int
    mae_scaled: float
    mae_unscaled: float
    baseline_mean_mae_scaled: float
    baseline_element_mae_scaled: float
    baseline_mean_mae_unscaled: float
    baseline_element_mae_unscaled: float

    @property
    def improvement_over_mean(self) -> float:
        """Relative reduction of the scaled MAE against the per-bin mean baseline (0.2 = 20 % lower)."""
        return 1.0 - self.mae_scaled / self.baseline_mean_mae_scaled

    @property
    def improvement_over_element(self) -> float:
        """Relative reduction of the scaled MAE against the per-element (composition) baseline."""
        return 1.0 - self.mae_scaled / self.baseline_element_mae_scaled

    def to_dict(self) -> dict:
        d = asdict(self)
        d["improvement_over_mean"] = self.improvement_over_mean
        d["improvement_over_element"] = self.improvement_over_element
        return d


def _split_arrays(store: DatasetStore, split: str, target: str):
    mem = store.to_memory()
    idx = mem.split_indices(split)
    crystals = [mem.crystal(i) for i in idx]
    if target == "site":
        atoms = mem.atom_indices(idx)
        return crystals, mem.site_dos[atoms].astype(np.float64), mem.atomic_numbers[atoms].astype(np.int64)
    return crystals, mem.total_dos[idx].astype(np.float64), None


def evaluate_surrogate(
    predictor: SurrogatePredictor | str | Path,
    store: str | Path | DatasetStore,
    split: str = "test",
    baseline_split: str = "train",
) -> SurrogateEvaluation:
    """Scaled and unscaled MAE of the surrogate and of both baselines on ``split``."""
    pred = predictor if isinstance(predictor, SurrogatePredictor) else SurrogatePredictor.from_checkpoint(predictor)
    ds = store if isinstance(store, DatasetStore) else DatasetStore.open(store)
    if not ds.has_dos:
        raise StoreError(f"{ds.path} holds structures only; evaluating the surrogate needs DOS")
    target = pred.target
    crystals, y_raw, z = _split_arrays(ds, split, target)
    if not crystals:
        raise StoreError(f"{ds.path}: split {split!r} is empty")
    train_crystals, train_raw, train_z = _split_arrays(ds, baseline_split, target)
    if not train_crystals:
        raise StoreError(f"{ds.path}: baseline split {baseline_split!r} is empty")
    scaler = pred.scaler
    y = scaler.transform(y_raw)
    train_y = scaler.transform(train_raw)

    y_hat = np.concatenate(pred.predict_scaled(crystals)) if target == "site" else np.stack(pred.predict_scaled(crystals))
    mean_b = MeanDOSBaseline().fit(train_y).predict(len(y))
    if target == "site":
        elem_b = PerElementMeanBaseline().fit(train_z, train_y).predict(z)
    else:
        elem_b = CompositionMeanBaseline().fit([c.atomic_numbers for c in train_crystals], train_y).predict(
            [c.atomic_numbers for c in crystals]
        )

    def mae(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).mean())

    return SurrogateEvaluation(
        split=split,
        target=target,
        n_structures=len(crystals),
        n_rows=int(y.shape[0]),
        mae_scaled=mae(y_hat, y),
        mae_unscaled=mae(scaler.inverse_transform(y_hat), y_raw),
        baseline_mean_mae_scaled=mae(mean_b, y),
        baseline_element_mae_scaled=mae(elem_b, y),
        baseline_mean_mae_unscaled=mae(scaler.inverse_transform(mean_b), y_raw),
        baseline_element_mae_unscaled=mae(scaler.inverse_transform(elem_b), y_raw),
    )
