"""The conditioning total DOS of a design run next to its property targets (``summary/design_dos.png``).

Left: up to 24 conditioning DOS (thin) and their mean (thick), states/eV/atom against E - E_F. Middle: for each
scalar target, the histogram of that property over the conditioning DOS with the target and its tolerance band
(for ``--like``, the panel names the reference). Right (when given): the surrogate total DOS of the best-ranked
candidates against the DOS each was conditioned on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.plots.figure_io import new_figure, save_figure

_LABELS = {"band_gap": "band gap (eV)", "dos_ef": "DOS(E_F) (states/eV/atom)", "n_ef": "N(E_F) (Eq. 6 bin sum)"}


def plot_design_dos(dos: np.ndarray, targets, out: str | Path, *, reference_label: str | None = None,
                    top_candidates: np.ndarray | None = None, top_conditioning: np.ndarray | None = None,
                    what: str = "conditioning DOS") -> list[Path]:
    """``dos`` (n, 256) states/eV/atom; ``targets`` a PropertyTargets or None; ``what`` names the spectra (e.g. the
    surrogate DOS of ranked candidates); returns the written files."""
    from dosmatgen.dos.property_targets import SCALAR_TARGETS, target_properties

    dos = np.asarray(dos, dtype=np.float64)
    scalar = [k for k in SCALAR_TARGETS if targets is not None and getattr(targets, k) is not None]
    show_top = top_candidates is not None and len(top_candidates) > 0
    ncols = 1 + max(len(scalar), 1) + int(show_top)
    fig, axes = new_figure(4.0 * ncols, 3.4, 1, ncols)
    axes = np.asarray(axes).reshape(-1)
    e = TOTAL_GRID.energies
    ax = axes[0]
    for row in dos[:24]:
        ax.plot(e, row, color="tab:blue", lw=0.5, alpha=0.4)
    ax.plot(e, dos.mean(axis=0), color="k", lw=1.8, label=f"mean of {dos.shape[0]}")
    ax.axvline(0.0, color="grey", ls=":", lw=0.8)
    title = what
    if targets is not None:
        title += f"\n{targets.describe()}"
    if reference_label:
        title += f"\nlike {reference_label}"
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("total DOS (states/eV/atom)")
    ax.legend(fontsize=7)
    props = target_properties(dos)
    for j, name in enumerate(scalar):
        ax = axes[1 + j]
        want = float(getattr(targets, name))
        lo, hi = (-targets.zero_abs_tol, targets.zero_abs_tol) if want == 0 else (want * (1 - targets.rel_tol), want * (1 + targets.rel_tol))
        ax.axvspan(lo, hi, color="tab:green", alpha=0.25, label="tolerance")
        ax.hist(props[name], bins=30, color="tab:blue", alpha=0.8)
        ax.axvline(want, color="tab:green", lw=2, label=f"target {want:g}")
        ax.set_xlabel(_LABELS[name])
        ax.set_ylabel(what)
        ax.legend(fontsize=7)
    if not scalar:
        ax = axes[1]
        ax.hist(props["band_gap"], bins=30, color="tab:blue", alpha=0.8)
        ax.set_xlabel(_LABELS["band_gap"])
        cats = [] if targets is None else [s for s, on in (("tcm %s" % targets.tcm, targets.tcm is not None),
                                                             ("thermoelectric", targets.thermoelectric)) if on]
        ax.set_title(", ".join(cats) if cats else f"band gap of the {what}", fontsize=8)
    if show_top:
        ax = axes[-1]
        colors = ["tab:red", "tab:orange", "tab:purple", "tab:brown"]
        for k, (pred, cond) in enumerate(zip(np.asarray(top_candidates), np.asarray(top_conditioning))):
            c = colors[k % len(colors)]
            ax.plot(e, cond, color=c, ls=":", lw=1.0)
            ax.plot(e, pred, color=c, lw=1.2, label=f"rank {k + 1}")
        ax.set_title("best ranked: surrogate (solid) vs conditioning (dotted)", fontsize=8)
        ax.set_xlabel("E - E_F (eV)")
        ax.legend(fontsize=7)
    return save_figure(fig, out)
