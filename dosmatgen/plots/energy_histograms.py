"""Formation-energy-per-atom histograms: generated vs ground truth, relaxed vs unrelaxed."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dosmatgen.plots.figure_io import new_figure, save_figure


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def draw_histograms(ax, groups: Mapping[str, Sequence[float]], bins: int | np.ndarray = 40, xlabel: str = "formation energy (eV/atom)") -> None:
    """Overlaid step histograms (density) of each group on shared bins; non-finite values are left out and counted."""
    data = {k: _finite(v) for k, v in groups.items()}
    pooled = np.concatenate([v for v in data.values() if v.size]) if any(v.size for v in data.values()) else np.zeros(0)
    if isinstance(bins, int):
        edges = np.histogram_bin_edges(pooled, bins=bins) if pooled.size else np.linspace(-1, 1, bins + 1)
    else:
        edges = np.asarray(bins)
    for name, v in data.items():
        dropped = len(np.asarray(groups[name]).reshape(-1)) - v.size
        label = f"{name} (n={v.size}" + (f", {dropped} non-finite left out" if dropped else "") + ")"
        if v.size:
            ax.hist(v, bins=edges, density=True, histtype="step", lw=1.5, label=label)
            ax.axvline(np.median(v), lw=0.8, ls=":", color=ax.lines[-1].get_color() if ax.lines else None)
        else:
            ax.plot([], [], label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8, frameon=False)


def plot_formation_energy_histograms(
    panels: Mapping[str, Mapping[str, Sequence[float]]], out: str | Path, bins: int = 40
) -> list[Path]:
    """One panel per entry of ``panels`` (title -> {group name -> energies in eV/atom}); PNG + SVG.

    Typical use: ``{"generated vs ground truth": {"ground truth": e_gt, "generated (relaxed)": e_gen},
    "relaxed vs unrelaxed": {"unrelaxed": e_unrel, "relaxed": e_rel}}``.
    """
    if not panels:
        raise ValueError("no histogram panels to plot")
    fig, axes = new_figure(5.0 * len(panels), 3.6, 1, len(panels))
    for ax, (title, groups) in zip(axes.ravel(), panels.items()):
        draw_histograms(ax, groups, bins)
        ax.set_title(title, fontsize=10)
    return save_figure(fig, out)
