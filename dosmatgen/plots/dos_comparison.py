"""Target vs generated DOS of the conditioned site, with the composition and the conditioned element highlighted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID, EnergyGrid
from dosmatgen.elements import symbol
from dosmatgen.plots.figure_io import new_figure, save_figure

TARGET_COLOR = "black"
GENERATED_COLOR = "tab:red"
HIGHLIGHT_COLOR = "tab:red"


def formula_with_highlight(crystal: Crystal | None, site_index: int | None) -> str:
    """Mathtext formula (e.g. ``Sr$\\mathbf{Ti}$O$_{3}$``) with the element of ``site_index`` in bold.

    Counts are the cell's (not reduced), in order of first appearance.
    """
    if crystal is None or crystal.num_atoms == 0:
        return "(no structure)"
    z = crystal.atomic_numbers
    highlight = int(z[site_index]) if site_index is not None and 0 <= site_index < len(z) else None
    order = list(dict.fromkeys(int(a) for a in z))
    parts = []
    for a in order:
        sym = symbol(a)
        n = int(np.sum(z == a))
        text = rf"$\mathbf{{{sym}}}$" if a == highlight else sym
        parts.append(text + (rf"$_{{{n}}}$" if n > 1 else ""))
    return "".join(parts)


@dataclass
class SiteDOSSample:
    """One panel: target DOS (K,) of the conditioned site and the generated structure's DOS (K,) at that site.

    ``generated_dos`` None (e.g. an invalid generated structure) draws only the target and says so.
    """

    target_dos: np.ndarray
    generated_dos: np.ndarray | None
    target_crystal: Crystal | None
    generated_crystal: Crystal | None
    site_index: int
    label: str = ""


def draw_site_dos_panel(ax, sample: SiteDOSSample, grid: EnergyGrid = SITE_GRID, ylabel: str = "DOS (states/eV)") -> None:
    e = grid.energies
    ax.plot(e, sample.target_dos, color=TARGET_COLOR, lw=1.4, label="target")
    if sample.generated_dos is not None and np.all(np.isfinite(sample.generated_dos)):
        ax.plot(e, sample.generated_dos, color=GENERATED_COLOR, lw=1.2, ls="--", label="generated")
    else:
        ax.text(0.98, 0.05, "generated: invalid (no DOS)", transform=ax.transAxes, ha="right", va="bottom",
                color=GENERATED_COLOR, fontsize=8)
    ax.axvline(0.0, color="grey", lw=0.6, ls=":")
    z = sample.target_crystal.atomic_numbers if sample.target_crystal is not None else None
    site = symbol(int(z[sample.site_index])) if z is not None and 0 <= sample.site_index < len(z) else "?"
    title = f"target {formula_with_highlight(sample.target_crystal, sample.site_index)}"
    title += f"  →  generated {formula_with_highlight(sample.generated_crystal, sample.site_index)}"
    ax.set_title(title, fontsize=9)
    ax.text(0.02, 0.9, f"conditioned site: {site} #{sample.site_index}" + (f"\n{sample.label}" if sample.label else ""),
            transform=ax.transAxes, fontsize=8, color=HIGHLIGHT_COLOR, va="top")
    ax.set_xlabel("E − E$_F$ (eV)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(grid.emin, grid.emax)
    ax.legend(loc="upper right", fontsize=8, frameon=False)


def plot_site_dos_comparison(
    samples: Sequence[SiteDOSSample], out: str | Path, *, grid: EnergyGrid = SITE_GRID, ncols: int = 2,
    ylabel: str = "DOS (states/eV)",
) -> list[Path]:
    """Grid of target-vs-generated panels; writes ``out``.png and ``out``.svg and returns their paths."""
    if not samples:
        raise ValueError("no samples to plot")
    ncols = max(1, min(ncols, len(samples)))
    nrows = int(np.ceil(len(samples) / ncols))
    fig, axes = new_figure(5.0 * ncols, 3.2 * nrows, nrows, ncols)
    flat = axes.ravel()
    for ax, s in zip(flat, samples):
        draw_site_dos_panel(ax, s, grid, ylabel)
    for ax in flat[len(samples):]:
        ax.set_axis_off()
    return save_figure(fig, out)
