"""Target vs surrogate vs DFT DOS of one site (or one crystal's total DOS)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from dosmatgen.dos.grid import SITE_GRID, EnergyGrid
from dosmatgen.plots.figure_io import new_figure, save_figure

STYLES = {
    "target": dict(color="black", lw=1.5),
    "surrogate": dict(color="tab:blue", lw=1.2, ls="--"),
    "DFT": dict(color="tab:green", lw=1.2, ls="-."),
}


def plot_dos_curves(
    curves: Mapping[str, np.ndarray | None],
    out: str | Path,
    *,
    grid: EnergyGrid = SITE_GRID,
    title: str = "",
    ylabel: str = "DOS (states/eV)",
    annotate_mae: bool = True,
) -> list[Path]:
    """Overlay named DOS curves (K,) on ``grid``: e.g. ``{"target": y, "surrogate": ŷ, "DFT": y_dft}``.

    Missing (None) curves are skipped. With ``annotate_mae`` the MAE of every other curve against the first one
    is written in the legend. PNG + SVG.
    """
    present = {k: np.asarray(v, dtype=np.float64) for k, v in curves.items() if v is not None}
    if not present:
        raise ValueError("no DOS curves to plot")
    for k, v in present.items():
        if v.shape != (grid.n,):
            raise ValueError(f"curve {k!r} has shape {v.shape}, expected ({grid.n},) on the energy grid")
    fig, axes = new_figure(6.4, 3.6)
    ax = axes[0, 0]
    e = grid.energies
    ref_name, ref = next(iter(present.items()))
    for k, v in present.items():
        label = k
        if annotate_mae and k != ref_name:
            label += f" (MAE vs {ref_name} {np.abs(v - ref).mean():.3g})"
        ax.plot(e, v, label=label, **STYLES.get(k, {}))
    ax.axvline(0.0, color="grey", lw=0.6, ls=":")
    ax.set_xlim(grid.emin, grid.emax)
    ax.set_xlabel("E − E$_F$ (eV)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out)


def plot_target_surrogate_dft(
    target: np.ndarray | None, surrogate: np.ndarray | None, dft: np.ndarray | None, out: str | Path, **kw
) -> list[Path]:
    """Convenience wrapper of :func:`plot_dos_curves` with the three standard names."""
    return plot_dos_curves({"target": target, "surrogate": surrogate, "DFT": dft}, out, **kw)
