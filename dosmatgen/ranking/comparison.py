"""Target vs surrogate vs DFT site DOS of a computed candidate (the DOSMatGen paper's Fig. 8).

The DFT record (any engine: GPAW or VASP, on its own grid) is featurized exactly like the dataset
(:func:`dosmatgen.dos.featurize.site_features`: s+p+d summed, 0.1 eV extra smoothing, SITE_GRID), so the three
curves are on the same 400-point grid in states/eV. The compared site is chosen among the selected sites of the
record's crystal (the structure the engine computed): the site the surrogate puts closest to the target when a
predictor is given (as in the ranking), else the site whose DFT DOS is closest to the target.
Distances: MAE in states/eV and cosine distance.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.atomic import atomic_write
from dosmatgen.ranking.distance import DistanceSpec, check_site_dos, site_distances
from dosmatgen.ranking.sites import SiteSelection

_MAE = DistanceSpec("mae")
_COS = DistanceSpec("cosine")


@dataclass
class DFTComparison:
    """The three curves (400,) states/eV at ``site`` of the computed crystal, and their distances."""

    id: str
    crystal: Crystal
    site: int
    target: np.ndarray
    surrogate: np.ndarray | None
    dft: np.ndarray

    @property
    def element(self) -> str:
        return self.crystal.symbols[self.site]

    def distances(self) -> dict[str, float]:
        nan = math.nan
        out = {
            "mae_dft_vs_target": float(site_distances(self.dft, self.target, _MAE)[0]),
            "cosine_dft_vs_target": float(site_distances(self.dft, self.target, _COS)[0]),
            "mae_surrogate_vs_target": nan,
            "mae_dft_vs_surrogate": nan,
        }
        if self.surrogate is not None:
            out["mae_surrogate_vs_target"] = float(site_distances(self.surrogate, self.target, _MAE)[0])
            out["mae_dft_vs_surrogate"] = float(site_distances(self.dft, self.surrogate, _MAE)[0])
        return out


def compare_to_dft(
    record: DOSRecord,
    target_features: np.ndarray,
    selection: SiteSelection,
    predict_site_dos: Callable[[Sequence[Crystal]], Sequence[np.ndarray]] | None = None,
) -> DFTComparison:
    """Build the comparison of one DFT record (see the module docstring); InvalidRecordError when no site is selected."""
    from dosmatgen.dos.featurize import site_features

    target = check_site_dos(target_features, "target DOS").reshape(-1)
    crystal = record.crystal
    sites = selection.sites_of(crystal)
    if not sites:
        raise InvalidRecordError(f"no conditioned site to compare: {selection.missing_reason(crystal)}", record=record.id)
    dft = site_features(record).astype(np.float64)
    surrogate_all = None
    if predict_site_dos is not None:
        surrogate_all = check_site_dos(list(predict_site_dos([crystal]))[0], "predicted site DOS")
        chooser = surrogate_all
    else:
        chooser = dft
    site = sites[int(np.argmin(site_distances(chooser[sites], target, _MAE)))]
    return DFTComparison(record.id, crystal, site, target, None if surrogate_all is None else surrogate_all[site], dft[site])


def plot_comparison(comp: DFTComparison, out: str | Path, target_name: str = "target") -> list[Path]:
    """Target vs surrogate vs DFT curves of ``comp`` (PNG + SVG), with E's :func:`plot_target_surrogate_dft`."""
    from dosmatgen.plots.surrogate_comparison import plot_target_surrogate_dft

    title = f"{comp.id}: {comp.crystal.formula}, site {comp.site} ({comp.element}) vs {target_name}"
    return plot_target_surrogate_dft(comp.target, comp.surrogate, comp.dft, out, title=title)


COMPARISON_COLUMNS = ("id", "formula", "site", "element", "mae_surrogate_vs_target", "mae_dft_vs_target",
                      "mae_dft_vs_surrogate", "cosine_dft_vs_target")  # fmt: skip


def write_comparison_csv(comparisons: Sequence[DFTComparison], path: str | Path) -> Path:
    """One row per comparison; MAE in states/eV (empty when there is no surrogate)."""
    path = Path(path)
    with atomic_write(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=COMPARISON_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for c in comparisons:
            d = c.distances()
            writer.writerow({
                "id": c.id, "formula": c.crystal.formula, "site": c.site, "element": c.element,
                **{k: "" if not math.isfinite(v) else f"{v:.6f}" for k, v in d.items()},
            })  # fmt: skip
    return path
