"""The ranked table: ``ranked.csv`` and ``ranked.md`` (top K) and ``all_candidates.csv`` (every candidate).

Columns: ``rank`` (1-based; empty for unscored candidates in all_candidates.csv), ``id``, ``formula`` (reduced),
``n_atoms``, ``sites`` (the selected conditioned sites as ``index:element`` separated by ``;``), ``best_site``,
``distance`` (the metric named in the Markdown header), ``formation_energy_eV_per_atom`` (empty when unknown),
``flags`` (``;``-separated).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from dosmatgen.io.atomic import atomic_write
from dosmatgen.ranking.rank import RankedCandidate, RankingResult
from dosmatgen.ranking.sites import site_labels

COLUMNS = ("rank", "id", "formula", "n_atoms", "sites", "best_site", "distance", "formation_energy_eV_per_atom", "flags")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def table_row(r: RankedCandidate) -> dict[str, str]:
    c = r.candidate
    return {
        "rank": str(r.rank) if r.rank else "",
        "id": c.id,
        "formula": c.crystal.formula,
        "n_atoms": str(c.crystal.num_atoms),
        "sites": site_labels(c.crystal, r.sites),
        "best_site": str(r.best_site) if r.best_site >= 0 else "",
        "distance": _fmt(r.distance, 6),
        "formation_energy_eV_per_atom": _fmt(c.formation_energy, 4),
        "flags": ";".join(r.flags),
    }


def write_csv(rows: list[RankedCandidate], path: str | Path) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(table_row(r))
    return path


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|") or "–"


def write_markdown(result: RankingResult, path: str | Path) -> Path:
    path = Path(path)
    lines = [
        f"# Ranked candidates for {result.target_name or 'the target'}",
        "",
        f"- metric: {result.metric_text()} (lower is closer)",
        f"- conditioned sites: {result.selection.describe()}",
        f"- predictor: {result.predictor or 'given'}",
        f"- scored {result.n_scored} of {len(result.ranked)} candidates; top {len(result.top)} shown",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c in ("rank", "n_atoms", "best_site", "distance", "formation_energy_eV_per_atom") else "---"
                       for c in COLUMNS) + "|",  # fmt: skip
    ]
    for r in result.top:
        row = table_row(r)
        lines.append("| " + " | ".join(_md_cell(row[c]) for c in COLUMNS) + " |")
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_ranked_tables(result: RankingResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``ranked.csv``, ``ranked.md`` (top K) and ``all_candidates.csv`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "csv": write_csv(result.top, out / "ranked.csv"),
        "md": write_markdown(result, out / "ranked.md"),
        "all": write_csv(result.ranked, out / "all_candidates.csv"),
    }
