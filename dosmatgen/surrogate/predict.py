"""Predict DOS with a trained surrogate: crystals in, unscaled DOS out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from dosmatgen.batch import collate_crystals
from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.dos.scaler import PerBinStandardScaler
from dosmatgen.metrics.inputs import to_crystal_or_none
from dosmatgen.surrogate.checkpoint import load_checkpoint
from dosmatgen.surrogate.model import DOSSurrogate


class SurrogatePredictor:
    """A loaded surrogate with its target scaler and energy grid.

    * site surrogate: :meth:`predict` -> one (n_atoms, 400) array per crystal, states/eV per site;
    * total surrogate: :meth:`predict` -> one (256,) array per crystal, states/eV/atom.

    :meth:`predict_scaled` returns the same in the scaled feature space (where the paper's MAE lives).
    """

    def __init__(self, model: DOSSurrogate, scaler: PerBinStandardScaler, grid: EnergyGrid, *, info: dict | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 64) -> None:
        self.model = model.to(device).eval()
        self.scaler = scaler
        self.grid = grid
        self.info = dict(info or {})
        self.device = torch.device(device)
        self.batch_size = int(batch_size)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 64) -> "SurrogatePredictor":
        model, scaler, grid, info = load_checkpoint(path, map_location=device)
        return cls(model, scaler, grid, info=info, device=device, batch_size=batch_size)

    @property
    def target(self) -> str:
        return self.model.config.target

    @torch.no_grad()
    def predict_scaled(self, crystals: Sequence[Crystal]) -> list[np.ndarray]:
        """Scaled predictions, one array per crystal (see class docstring for shapes)."""
        out: list[np.ndarray] = []
        for start in range(0, len(crystals), self.batch_size):
            chunk = list(crystals[start : start + self.batch_size])
            batch = collate_crystals(chunk).to(self.device)
            pred = self.model.forward_batch(batch).double().cpu().numpy()
            if self.target == "site":
                ptr = batch.ptr.cpu().numpy()
                out.extend(pred[ptr[i] : ptr[i + 1]] for i in range(len(chunk)))
            else:
                out.extend(pred[i] for i in range(len(chunk)))
        return out

    def predict(self, crystals: Sequence[Crystal]) -> list[np.ndarray]:
        """Unscaled predictions (states/eV per site, or states/eV/atom), one array per crystal."""
        return [self.scaler.inverse_transform(p) for p in self.predict_scaled(crystals)]

    def predict_sites(self, structures: Sequence[Any], site_index: Sequence[int], *, scaled: bool = True) -> np.ndarray:
        """(M, 400) prediction at one site per structure (the conditioned site of a generation protocol).

        Structures that are missing, empty, NaN or whose ``site_index`` is out of range give a NaN row, which
        the DOS-match metrics count as undefined instead of crashing.
        """
        if self.target != "site":
            raise ValueError("predict_sites needs a site-DOS surrogate (target='site')")
        if len(site_index) != len(structures):
            raise ValueError(f"{len(site_index)} site indices for {len(structures)} structures")
        rows = np.full((len(structures), self.grid.n), np.nan)
        keep = []
        for i, (s, k) in enumerate(zip(structures, site_index)):
            c = to_crystal_or_none(s)
            if c is not None and 0 <= int(k) < c.num_atoms:
                keep.append((i, c, int(k)))
        if keep:
            preds = self.predict_scaled([c for _, c, _ in keep])
            for (i, _, k), p in zip(keep, preds):
                rows[i] = p[k]
        return rows if scaled else self.scaler.inverse_transform(rows)
