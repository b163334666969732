"""Per-round and whole-loop reports of ``dosmatgen loop``: metrics, Markdown and plots.

Per DFT-checked candidate (``round-NN/dft.json``): its DFT site DOS at the conditioned site, featurized like the
dataset (s+p+d, the store's smoothing, SITE_GRID, states/eV), compared with the target by cosine similarity and
MAE; its MLFF formation energy (eV/atom, from the screen's relaxation); whether it is novel (no StructureMatcher
twin in the store the round started from); and the error of the round's surrogate (before fine-tuning) on its
DFT site DOS.

Per round (``round-NN/report.json``/``.md``): best and median cosine and MAE, the best novel candidate with
formation energy <= 0, the surrogate's error on the new points, the surrogate's MAE on the base store's test
split after the round's fine-tuning, and the DOS overlay of the round's best candidate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dosmatgen.dos.grid import SITE_GRID


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    from dosmatgen.dos.properties import cosine_similarity

    return float(cosine_similarity(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def _finite(values: Sequence[Any]) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def round_metrics(candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Summary numbers of one round from its candidate rows (see the module docstring)."""
    done = [c for c in candidates if c["status"] == "done"]
    cos = _finite([c["cosine"] for c in done])
    mae = _finite([c["mae"] for c in done])
    best = max(done, key=lambda c: c["cosine"], default=None)
    novel_ok = [c for c in done if c["novel"] and c["formation_energy"] is not None and c["formation_energy"] <= 0.0]
    best_novel = max(novel_ok, key=lambda c: c["cosine"], default=None)
    surr_site = _finite([c.get("surrogate_mae_site") for c in done])
    surr_all = _finite([c.get("surrogate_mae_all") for c in done])
    fe = _finite([c["formation_energy"] for c in done])
    return {
        "dft_requested": len(candidates),
        "dft_done": len(done),
        "dft_failed": len(candidates) - len(done),
        "best_cosine": float(cos.max()) if cos.size else None,
        "median_cosine": float(np.median(cos)) if cos.size else None,
        "best_mae": float(mae.min()) if mae.size else None,
        "median_mae": float(np.median(mae)) if mae.size else None,
        "best": None if best is None else {k: best[k] for k in ("id", "formula", "role", "cosine", "mae", "formation_energy", "novel")},
        "best_novel_stable": None if best_novel is None else {k: best_novel[k] for k in ("id", "formula", "role", "cosine", "mae", "formation_energy")},
        "novel_fraction": float(np.mean([c["novel"] for c in done])) if done else None,
        "formation_energy_median": float(np.median(fe)) if fe.size else None,
        "formation_energy_min": float(fe.min()) if fe.size else None,
        "surrogate_mae_new_site": float(surr_site.mean()) if surr_site.size else None,
        "surrogate_mae_new_all_sites": float(surr_all.mean()) if surr_all.size else None,
    }


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def round_markdown(r: int, metrics: dict[str, Any], candidates: Sequence[dict[str, Any]], extra: dict[str, Any]) -> str:
    lines = [f"# Loop round {r}", "",
             f"DFT: {metrics['dft_done']} done, {metrics['dft_failed']} failed of {metrics['dft_requested']} requested. "
             f"Models: denoiser `{extra['denoiser']}`, surrogate `{extra['surrogate']}`.", "",
             "| | value |", "|---|---|",
             f"| best cosine (DFT site DOS vs target) | {_fmt(metrics['best_cosine'])} |",
             f"| median cosine | {_fmt(metrics['median_cosine'])} |",
             f"| best / median MAE (states/eV) | {_fmt(metrics['best_mae'], '.4f')} / {_fmt(metrics['median_mae'], '.4f')} |",
             f"| best novel candidate with E_form <= 0 | {_fmt((metrics['best_novel_stable'] or {}).get('cosine'))} "
             f"({(metrics['best_novel_stable'] or {}).get('formula', '–')}) |",
             f"| novel fraction (no twin in the store) | {_fmt(metrics['novel_fraction'], '.2f')} |",
             f"| surrogate MAE on the new DFT points, conditioned site / all sites (before fine-tuning) | "
             f"{_fmt(metrics['surrogate_mae_new_site'], '.4f')} / {_fmt(metrics['surrogate_mae_new_all_sites'], '.4f')} |",
             f"| surrogate MAE on the base test split after this round | {_fmt(extra.get('surrogate_test_mae'), '.4f')} |",
             f"| MLFF formation energy, median / min (eV/atom) | {_fmt(metrics['formation_energy_median'])} / {_fmt(metrics['formation_energy_min'])} |",
             "", "| slot | role | formula | cosine | MAE | E_form (eV/atom) | novel | surrogate MAE (site) | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in candidates:
        lines.append(f"| {c['slot']} | {c['role']} | {c['formula']} | {_fmt(c.get('cosine'))} | {_fmt(c.get('mae'), '.4f')} | "
                     f"{_fmt(c.get('formation_energy'))} | {'yes' if c.get('novel') else 'no'} | "
                     f"{_fmt(c.get('surrogate_mae_site'), '.4f')} | {c['status']}{': ' + c['reason'] if c.get('reason') else ''} |")
    return "\n".join(lines) + "\n"


def loop_table(rounds: Sequence[dict[str, Any]]) -> str:
    """The per-round Markdown table of a loop (what BENCHMARKS.md and docs/loop.md publish)."""
    lines = ["| round | DFT done | best cosine | median cosine | best MAE | best novel E_form<=0 cosine (formula) | "
             "novel | surrogate MAE new pts (site) | surrogate test MAE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        m = r["metrics"]
        bn = m["best_novel_stable"] or {}
        lines.append(f"| {r['round']} | {m['dft_done']}/{m['dft_requested']} | {_fmt(m['best_cosine'])} | "
                     f"{_fmt(m['median_cosine'])} | {_fmt(m['best_mae'], '.4f')} | {_fmt(bn.get('cosine'))} "
                     f"({bn.get('formula', '–')}) | {_fmt(m['novel_fraction'], '.2f')} | "
                     f"{_fmt(m['surrogate_mae_new_site'], '.4f')} | {_fmt(r.get('surrogate_test_mae'), '.4f')} |")
    return "\n".join(lines) + "\n"


def plot_round_overlays(target: np.ndarray, best_by_round: Sequence[tuple[int, str, np.ndarray | None]], out: Path,
                        title: str) -> list[Path]:
    """Target site DOS and the DFT site DOS of each round's best candidate on one axis (PNG + SVG)."""
    from dosmatgen.plots.figure_io import new_figure, save_figure

    fig, axes = new_figure(6.4, 3.8)
    ax = axes[0, 0]
    e = SITE_GRID.energies
    ax.plot(e, target, color="black", lw=1.6, label="target")
    for r, label, dos in best_by_round:
        if dos is not None:
            ax.plot(e, dos, lw=1.1, label=f"round {r}: {label} (cos {cosine(dos, target):.3f})")
    ax.axvline(0.0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("site DOS (states/eV)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, out)


def plot_progress(rounds: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Best and median cosine per round (PNG + SVG)."""
    from dosmatgen.plots.figure_io import new_figure, save_figure

    fig, axes = new_figure(5.0, 3.4)
    ax = axes[0, 0]
    x = [r["round"] for r in rounds]
    for key, style in (("best_cosine", "o-"), ("median_cosine", "s--")):
        ax.plot(x, [np.nan if r["metrics"][key] is None else r["metrics"][key] for r in rounds], style, label=key.replace("_", " "))
    ax.set_xlabel("round")
    ax.set_ylabel("DFT site-DOS cosine to target")
    ax.set_xticks(x)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def write_json(path: Path, payload: Any) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)
