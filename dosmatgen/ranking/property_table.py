"""The tables of a property ranking: ``ranked.csv`` and ``ranked.md`` (top K), ``all_candidates.csv`` (every one).

Columns: ``rank``, ``id``, ``formula``, ``n_atoms``, ``meets_targets`` (yes/no), ``score`` (lower is better;
:func:`dosmatgen.dos.property_targets.target_error`), the predicted ``band_gap_eV``, ``dos_ef`` (states/eV/atom)
and ``n_ef`` (Eq. 6 bin sum), ``formation_energy_eV_per_atom`` (empty when unknown), ``flags``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dosmatgen.io.atomic import atomic_write
from dosmatgen.ranking.property_rank import PropertyRankedCandidate, PropertyRankingResult
from dosmatgen.ranking.table import _fmt, _md_cell  # the site ranking's cell formatting

COLUMNS = ("rank", "id", "formula", "n_atoms", "meets_targets", "score", "band_gap_eV", "dos_ef", "n_ef",
           "formation_energy_eV_per_atom", "flags")  # fmt: skip
_NUMERIC = {"rank", "n_atoms", "score", "band_gap_eV", "dos_ef", "n_ef", "formation_energy_eV_per_atom"}


def table_row(r: PropertyRankedCandidate) -> dict[str, str]:
    c, p = r.candidate, r.properties
    return {
        "rank": str(r.rank) if r.rank else "", "id": c.id, "formula": c.crystal.formula, "n_atoms": str(c.crystal.num_atoms),
        "meets_targets": ("yes" if r.meets else "no") if r.scored else "", "score": _fmt(r.score, 6),
        "band_gap_eV": _fmt(p.get("band_gap")), "dos_ef": _fmt(p.get("dos_ef")), "n_ef": _fmt(p.get("n_ef"), 3),
        "formation_energy_eV_per_atom": _fmt(c.formation_energy), "flags": ";".join(r.flags),
    }  # fmt: skip


def _write_csv(rows: list[PropertyRankedCandidate], path: Path) -> Path:
    with atomic_write(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(table_row(r))
    return path


def _write_markdown(result: PropertyRankingResult, path: Path) -> Path:
    t = result.targets
    lines = [
        f"# Ranked candidates for {t.describe()}",
        "",
        f"- score: sum over scalar targets of |y - y*| / max(|y*|, {t.zero_abs_tol:g}), plus 1 per missed categorical "
        f"target (lower is better); a target is met within ±{100 * t.rel_tol:g} % (absolute {t.zero_abs_tol:g} for a target of 0)",
        f"- predictor: {result.predictor or 'given'} (per-atom total DOS)",
    ]
    if t.thermoelectric:
        lines.append(f"- thermoelectric reference DOS: {result.te_reference or 'none (gap and DOS(E_F) criteria only)'}")
    lines += [
        f"- scored {result.n_scored} of {len(result.ranked)} candidates; {result.n_meeting} meet every target; "
        f"top {len(result.top)} shown{' (only those meeting every target)' if result.only_meeting else ''}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if c in _NUMERIC else "---" for c in COLUMNS) + "|",
    ]
    for r in result.top:
        row = table_row(r)
        lines.append("| " + " | ".join(_md_cell(row[c]) for c in COLUMNS) + " |")
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_property_tables(result: PropertyRankingResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``ranked.csv``, ``ranked.md`` (top K) and ``all_candidates.csv`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {"csv": _write_csv(result.top, out / "ranked.csv"), "md": _write_markdown(result, out / "ranked.md"),
            "all": _write_csv(result.ranked, out / "all_candidates.csv")}  # fmt: skip
