"""Headless figure creation and saving (PNG + SVG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # headless; a user's explicit backend choice made earlier is kept

import matplotlib.pyplot as plt  # noqa: E402


def new_figure(width: float = 6.4, height: float = 4.0, nrows: int = 1, ncols: int = 1, **kw):
    """(fig, axes) from ``plt.subplots`` with a tight layout."""
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained", squeeze=False, **kw)


def save_figure(fig, out: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``out`` with suffixes .png and .svg (any suffix of ``out`` is replaced) and close the figure."""
    stem = Path(out)
    if stem.suffix.lower() in (".png", ".svg", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_name(stem.name + suffix)
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    plt.close(fig)
    return paths
