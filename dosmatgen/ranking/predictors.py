"""Site-DOS predictors for ranking: ``predict_site_dos(crystals) -> list[(n_atoms, 400) unscaled]``.

* :class:`SurrogateSiteDOS` — the trained forward surrogate (:mod:`dosmatgen.surrogate`), site target only.
* :class:`PerElementMeanSiteDOS` — the mean site DOS of each element in a dataset store (a baseline: it ignores
  the structure; unseen elements get the mean over all sites, and are listed by :meth:`unseen_elements`).

Both carry ``scaler``: the per-bin standardiser of the site features (used by the ``mae`` distance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import CheckpointError


class SiteDOSPredictor(Protocol):
    def __call__(self, crystals: Sequence[Crystal]) -> list[np.ndarray]: ...


class SurrogateSiteDOS:
    """The forward surrogate of a checkpoint as a site-DOS predictor (CheckpointError for a missing file,
    a foreign file, or a total-DOS surrogate)."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        from dosmatgen.surrogate.predict import SurrogatePredictor

        self.checkpoint = Path(checkpoint)
        self.predictor = SurrogatePredictor.from_checkpoint(self.checkpoint, device=device, batch_size=batch_size)
        if self.predictor.target != "site":
            raise CheckpointError(f"{checkpoint} is a {self.predictor.target}-DOS surrogate: rank with it by property targets "
                                  "(--band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric), or give a site-DOS surrogate for a site --target")
        if self.predictor.grid != SITE_GRID:
            raise CheckpointError(f"{checkpoint} predicts on {self.predictor.grid}, not the model grid {SITE_GRID}")
        self.scaler = self.predictor.scaler

    def __call__(self, crystals: Sequence[Crystal]) -> list[np.ndarray]:
        return [np.asarray(p, dtype=np.float64) for p in self.predictor.predict(list(crystals))]

    def describe(self) -> str:
        return f"surrogate {self.checkpoint.name}"


class PerElementMeanSiteDOS:
    """Mean site DOS (states/eV on SITE_GRID) per element over the chosen split of a dataset store."""

    def __init__(self, store_path: str | Path, split: str | None = "train") -> None:
        from dosmatgen.data.store import DatasetStore
        from dosmatgen.surrogate.baselines import PerElementMeanBaseline

        store = DatasetStore.open(store_path)
        if store.site_grid != SITE_GRID:
            raise CheckpointError(f"{store_path} has site features on {store.site_grid}, not {SITE_GRID}")
        arrays = store.to_memory()
        offsets = np.asarray(arrays.offsets)
        rows = np.arange(len(arrays.ids)) if split is None else store.split_indices(split)
        if rows.size == 0:
            raise CheckpointError(f"{store_path} has no structures in split {split!r}")
        atoms = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in rows])
        self.store_path = Path(store_path)
        self.baseline = PerElementMeanBaseline().fit(np.asarray(arrays.atomic_numbers)[atoms], np.asarray(arrays.site_dos)[atoms])
        self.scaler = store.scalers["site"]

    def unseen_elements(self, crystal: Crystal) -> list[int]:
        return sorted({int(z) for z in crystal.atomic_numbers} - set(self.baseline.elements))

    def __call__(self, crystals: Sequence[Crystal]) -> list[np.ndarray]:
        return [self.baseline.predict(c.atomic_numbers) for c in crystals]

    def describe(self) -> str:
        return f"per-element mean site DOS of {self.store_path.name}"


def predictor_scaler(predictor: Any) -> Any:
    """The predictor's ``scaler`` attribute, or None."""
    return getattr(predictor, "scaler", None)
