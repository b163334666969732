"""Training curves from a JSONL metrics log (one JSON object per epoch, as the trainers write)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dosmatgen.errors import InvalidRecordError
from dosmatgen.plots.figure_io import new_figure, save_figure


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a run still writing) is skipped, any other bad line raises."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRecordError("no such metrics log", file=str(path))
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break
            raise InvalidRecordError(f"not JSON ({err.msg})", file=str(path), record=i + 1) from None
    return rows


def _series(rows: Sequence[dict[str, Any]], key: str, x_key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r.get(x_key, i + 1), r.get(key)) for i, r in enumerate(rows)]
    pts = [(x, y) for x, y in pts if isinstance(y, (int, float)) and y is not None and np.isfinite(y)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def plot_training_curves(
    log: str | Path | Sequence[dict[str, Any]],
    out: str | Path,
    *,
    keys: Sequence[str] | None = None,
    x_key: str = "epoch",
    log_y: bool = True,
    title: str = "",
) -> list[Path]:
    """Loss curves (default: every ``train_*``/``val_*`` key holding numbers, except throughput) and the learning rate.

    ``log`` is a path to ``metrics.jsonl`` or already-parsed rows. Writes PNG + SVG.
    """
    rows = read_jsonl(log) if isinstance(log, (str, Path)) else list(log)
    if not rows:
        raise InvalidRecordError("metrics log has no rows", file=str(log) if isinstance(log, (str, Path)) else None)
    if keys is None:
        names = dict.fromkeys(k for r in rows for k in r)
        keys = [k for k in names if (k.startswith("train_") or k.startswith("val_")) and "per_s" not in k]
    has_lr = any("lr" in r for r in rows)
    fig, axes = new_figure(9.0 if has_lr else 5.5, 3.6, 1, 2 if has_lr else 1)
    ax = axes[0, 0]
    for k in keys:
        x, y = _series(rows, k, x_key)
        if x.size:
            ax.plot(x, y, lw=1.2, label=k, ls="--" if k.startswith("val_") else "-")
    if log_y and any(np.all(_series(rows, k, x_key)[1] > 0) and _series(rows, k, x_key)[1].size for k in keys):
        ax.set_yscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("loss / metric")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    if has_lr:
        x, y = _series(rows, "lr", x_key)
        axes[0, 1].plot(x, y, color="tab:gray")
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_xlabel(x_key)
        axes[0, 1].set_ylabel("learning rate")
    return save_figure(fig, out)
