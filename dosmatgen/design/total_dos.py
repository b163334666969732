"""The surrogate total DOS of a crystal: per-atom total DOS, states/eV/atom on TOTAL_GRID.

* a total-DOS surrogate (``target: total``) predicts it directly;
* a site-DOS surrogate (the shipped ``surrogate-small``) gives it as the mean of its predicted site DOS over the
  atoms, resampled from SITE_GRID (400 points) onto TOTAL_GRID (256 points, same [-10, 10] eV window).

The site route is an approximation: site DOS are projections onto atomic spheres and miss the interstitial
states. On the 3,020 crystals of the bundled store the mean DFT site DOS (routed the same way) against the DFT
total DOS has mean cosine 0.947 and MAE 0.293 states/eV/atom (the total DOS averages 0.474); docs/design.md. Conditioning DOS and candidates go through the same
route, so comparisons between them (and against random pairs) are like with like.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID, EnergyGrid


def site_to_total(site_dos: np.ndarray, grid: EnergyGrid = SITE_GRID) -> np.ndarray:
    """(n_atoms, G) site DOS, states/eV per site -> (256,) mean over atoms on TOTAL_GRID, states/eV/atom."""
    mean = np.asarray(site_dos, dtype=np.float64).mean(axis=0)
    return np.clip(np.interp(TOTAL_GRID.energies, grid.energies, mean, left=0.0, right=0.0), 0.0, None)


class SurrogateTotalDOS:
    """``crystals -> (n, 256)`` surrogate total DOS (module docstring); rows of NaN for a missing crystal."""

    def __init__(self, checkpoint: str, device: str = "cpu") -> None:
        from dosmatgen.checkpoint_paths import resolve_checkpoint
        from dosmatgen.surrogate.predict import SurrogatePredictor

        self.checkpoint = str(checkpoint)
        self.predictor = SurrogatePredictor.from_checkpoint(resolve_checkpoint(checkpoint), device=device)

    @property
    def route(self) -> str:
        return "total surrogate" if self.predictor.target == "total" else "mean of site-surrogate DOS over atoms"

    def __call__(self, crystals: Sequence[Crystal | None]) -> np.ndarray:
        out = np.full((len(crystals), TOTAL_GRID.n), np.nan)
        keep = [i for i, c in enumerate(crystals) if c is not None]
        if not keep:
            return out
        preds = self.predictor.predict([crystals[i] for i in keep])
        for i, p in zip(keep, preds):
            if self.predictor.target == "total":
                out[i] = np.clip(np.interp(TOTAL_GRID.energies, self.predictor.grid.energies, p), 0.0, None)
            else:
                out[i] = site_to_total(p, self.predictor.grid)
        return out
