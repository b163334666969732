"""The figures of an evaluation report, drawn with :mod:`dosmatgen.plots` (PNG + SVG each)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError
from dosmatgen.plots.dos_comparison import SiteDOSSample, plot_site_dos_comparison
from dosmatgen.plots.energy_histograms import plot_formation_energy_histograms
from dosmatgen.plots.figure_io import new_figure, save_figure
from dosmatgen.plots.training_curves import plot_training_curves

log = logging.getLogger(__name__)


def dos_examples_figure(
    out: Path,
    title: str,
    crystals: Sequence[Crystal],
    generated: Sequence[Crystal | None],
    target_unscaled: Sequence[np.ndarray],
    generated_rows_unscaled: np.ndarray | None,
    offsets: np.ndarray,
    ids: Sequence[str],
    per_structure_mae: Sequence[float] | None,
    n_examples: int,
    site: int = 0,
) -> list[Path]:
    """Target DOS (from the store) vs the surrogate's DOS of the generated structure at ``site`` for the first
    ``n_examples`` structures (the same structures in every setting's figure)."""
    samples = []
    for i in range(min(n_examples, len(crystals))):
        k = min(site, crystals[i].num_atoms - 1)
        gen_row = None if generated_rows_unscaled is None else generated_rows_unscaled[offsets[i] + k]
        mae = None if per_structure_mae is None else per_structure_mae[i]
        label = f"{ids[i]}; generated = surrogate DOS of the generated structure"
        if mae is not None and math.isfinite(mae):
            label += f"\nMAE(ŷ_gen, y) {mae:.3f} (scaled, mean over all sites)"
        samples.append(SiteDOSSample(target_unscaled[i][k], gen_row, crystals[i], generated[i], k, label=label))
    if not samples:
        return []
    paths = plot_site_dos_comparison(samples, out, ylabel="site DOS (states/eV)")
    log.debug("wrote %s (%s)", paths, title)
    return paths


def match_rates_figure(results: Mapping[str, Mapping[str, Any]], out: Path) -> list[Path]:
    """Structure match, composition match and DOS MAE against t_start, one line per guidance mode."""
    panels = [("structure match", ("structure_match", "rate")), ("composition match", ("composition_match", "rate")),
              ("MAE(ŷ_gen, y), scaled", ("dos_match", "mae_gen_vs_target", "value"))]
    fig, axes = new_figure(13.0, 3.4, 1, len(panels))
    drawn = False
    for ax, (name, keys) in zip(axes.ravel(), panels):
        for guidance, by_t in results.items():
            pts = []
            for t, e in by_t.items():
                v: Any = e.get("metrics") if e.get("status") == "ok" else None
                for k in keys:
                    v = v.get(k) if isinstance(v, Mapping) else None
                if isinstance(v, (int, float)) and math.isfinite(v):
                    pts.append((int(t), float(v)))
            if pts:
                pts.sort()
                ax.plot(*zip(*pts), marker="o", label=guidance)
                drawn = True
        ax.set_xlabel("t_start")
        ax.set_title(name, fontsize=10)
        if ax.lines:
            ax.legend(fontsize=8, frameon=False)
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return []
    return save_figure(fig, out)


def energy_figure(energies: Mapping[str, Any], out: Path) -> list[Path]:
    """Formation-energy histograms: ground truth vs each setting (relaxed), and relaxed vs unrelaxed (generated)."""
    gt = energies.get("ground_truth", {})
    gen_relaxed = {"ground truth (relaxed)": gt.get("relaxed", [])}
    rel_vs_unrel: dict[str, list[float]] = {}
    for key, e in energies.get("generated", {}).items():
        gen_relaxed[f"{key} (relaxed)"] = e.get("relaxed", [])
        rel_vs_unrel.setdefault("generated, unrelaxed", []).extend(e.get("unrelaxed", []))
        rel_vs_unrel.setdefault("generated, relaxed", []).extend(e.get("relaxed", []))
    panels = {"generated vs ground truth": gen_relaxed}
    if rel_vs_unrel:
        panels["relaxed vs unrelaxed (all settings)"] = rel_vs_unrel
    values = [v for p in panels.values() for g in p.values() for v in g]
    if not np.isfinite(np.asarray(values, dtype=float)).any():
        return []
    return plot_formation_energy_histograms(panels, out)


def training_curves_figure(checkpoint: Path, out: Path) -> list[Path]:
    """Training curves from the ``metrics.jsonl`` next to the checkpoint; [] when there is none or it is unreadable."""
    log_path = Path(checkpoint).parent / "metrics.jsonl"
    if not log_path.is_file():
        return []
    try:
        return plot_training_curves(log_path, out, title=f"training log {log_path}")
    except InvalidRecordError as exc:
        log.warning("training curves not drawn: %s", exc)
        return []
