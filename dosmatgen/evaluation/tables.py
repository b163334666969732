"""``metrics.md``: our reconstruction numbers next to the paper's, in the layout of its Tables 1 and 2."""

from __future__ import annotations

import math
from typing import Any, Mapping

from dosmatgen.evaluation.acceptance import acceptance_markdown
from dosmatgen.evaluation.paper_reference import PAPER_LABEL, SURROGATE_MAE, paper_value

PAPER_T = 1000  # the paper's T: its t_start values only mean the same noise level for a T = 1000 diffusion


def fmt(value: Any, percent: bool = False, digits: int = 3) -> str:
    """A table cell: '—' for missing/NaN, ``12.5 %`` for rates, else ``digits`` decimals."""
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    return f"{100 * v:.1f} %" if percent else f"{v:.{digits}f}"


def _paper(metric: str, guidance: str, t_start: int, num_steps: int) -> float | None:
    return paper_value(metric, guidance, t_start) if num_steps == PAPER_T else None


def _rows(results: Mapping[str, Mapping[str, Any]]):
    for guidance, by_t in results.items():
        for t, entry in by_t.items():
            yield guidance, int(t), entry


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _ci(interval: Mapping[str, Any] | None) -> str:
    if not interval or not math.isfinite(interval.get("lo", float("nan"))):
        return "—"
    return f"[{interval['lo']:.3f}, {interval['hi']:.3f}]"


def dos_table(results: Mapping[str, Mapping[str, Any]], num_steps: int) -> list[str]:
    lines = [
        "| guidance | t_start | MAE(ŷ_gen, y) ours | 95 % interval | random-pair baseline | 95 % interval | MAE(ŷ_gen, ŷ) ours | undefined sites | MAE(ŷ_gen, y) paper |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, t, e in _rows(results):
        paper = fmt(_paper("dos_mae_gen_vs_target", g, t, num_steps))
        if e.get("status") != "ok":
            lines.append(f"| {g} | {t} | {e.get('status')} | | | | | | {paper} |")
            continue
        m = e["metrics"]
        if "dos_match" not in m:
            lines.append(f"| {g} | {t} | not run (no surrogate) | | | | | | {paper} |")
            continue
        gy = m["dos_match"]["mae_gen_vs_target"]
        gp = m["dos_match"].get("mae_gen_vs_pred_ref", {})
        boot = m.get("dos_match_bootstrap") or {}
        lines.append(f"| {g} | {t} | {fmt(gy['value'])} | {_ci(boot.get('mae_gen_vs_target'))} | {fmt(gy['baseline'])} | "
                     f"{_ci(boot.get('random_pair'))} | {fmt(gp.get('value'))} | {gy['n_undefined']} / {gy['n']} | {paper} |")
    return lines


def structure_table(results: Mapping[str, Mapping[str, Any]], num_steps: int) -> list[str]:
    lines = [
        "| guidance | t_start | structure match ours | paper | composition match ours | paper | valid | unique | novel | matcher time-outs | generation s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g, t, e in _rows(results):
        ps = fmt(_paper("structure_match", g, t, num_steps), percent=True)
        pc = fmt(_paper("composition_match", g, t, num_steps), percent=True)
        if e.get("status") != "ok":
            lines.append(f"| {g} | {t} | {e.get('status')} | {ps} | | {pc} | | | | | |")
            continue
        m = e["metrics"]
        sm = m["structure_match"]
        timeouts = sm["n_timeout"] + (_get(m, "uniqueness", "n_timeout") or 0) + (_get(m, "novelty", "n_timeout") or 0)
        lines.append(
            f"| {g} | {t} | {fmt(sm['rate'], True)} ({sm['n_matched']}/{sm['n']}) | {ps} | "
            f"{fmt(m['composition_match']['rate'], True)} | {pc} | {fmt(m['validity']['valid_rate'], True)} | "
            f"{fmt(_get(m, 'uniqueness', 'rate'), True)} | {fmt(_get(m, 'novelty', 'rate'), True)} | {timeouts} | "
            f"{fmt(_get(e, 'timing', 'generation_s'), digits=1)} |"
        )
    return lines


def metrics_markdown(report: Mapping[str, Any]) -> str:
    """The whole ``metrics.md`` from the ``metrics.json`` dict."""
    p = report["provenance"]
    cs = report["conditioning_set"]
    num_steps = int(report["diffusion_steps"])
    surrogate = p.get("surrogate")
    lines = [
        f"# Reconstruction protocol: split `{p['split']}`",
        "",
        f"**Ours:** {cs['n_selected']} of {cs['n_available']} structures of split `{p['split']}` "
        f"(limit {p['limit']}, seed {p['seed']}; {cs['n_sites']} sites, {cs['num_atoms_min']}–{cs['num_atoms_max']} atoms) "
        f"from `{p['store']}`; diffusion T = {num_steps}.",
        f"Checkpoint `{p['checkpoint']['path']}` (sha256 `{p['checkpoint']['sha256'][:16]}…`, epoch {p.get('checkpoint_epoch')}); "
        + (f"surrogate sha256 `{surrogate['sha256'][:16]}…`." if surrogate else "no surrogate (DOS match not run)."),
        "",
        f"**Paper:** {PAPER_LABEL}. Different data, DFT code and model size: compare the protocol and the trends "
        "(t_start, guidance), not the values.",
    ]
    if num_steps != PAPER_T:
        lines.append(f"Paper columns are left empty: this model's T = {num_steps}, so its t_start values are not the paper's noise levels.")
    lines += ["", "## Table 1: DOS match (scaled 400-bin site DOS, all conditioned sites, surrogate-predicted)", ""]
    lines += dos_table(report["results"], num_steps)
    intrinsic = report.get("surrogate_intrinsic")
    lines += [""]
    if intrinsic:
        lines.append(f"Surrogate intrinsic error MAE(ŷ, y) on these sites: {fmt(intrinsic['value'])} "
                     f"(random pairs {fmt(intrinsic['baseline'])}); paper: {SURROGATE_MAE}.")
    lines.append("MAE(ŷ_gen, ŷ) compares against the surrogate's own prediction for the true structure, removing its "
                 "intrinsic error. The random-pair baseline pairs each site's prediction with another site's target.")
    lines.append("Intervals: 95 % percentile bootstrap over structures (2,000 resamples; the sites of one structure are "
                 "resampled together).")
    if report.get("acceptance"):
        lines += ["", "## Science acceptance (issues 7 and 19)", ""]
        lines += acceptance_markdown(report["acceptance"])
    lines += ["", "## Table 2: structure and composition match against the conditioning structure", ""]
    lines += structure_table(report["results"], num_steps)
    lines += [
        "",
        "StructureMatcher(stol 0.5, angle_tol 10, ltol 0.3); rates divide by all structures: invalid outputs and time-outs "
        "count as non-matches (time-outs are listed). Valid = structural (distances ≥ 0.5 Å, volume ≥ 0.1 Å³) and SMACT "
        "compositional validity; unique among valid outputs; novel = matches no training structure.",
        "`none` = one conditional denoiser pass per step (w = 0): not in the paper. `uncond` = the same model with the "
        "condition masked out on every site (the unconditioned baseline). "
        "Generation s = wall-clock time of the sampler on this machine (it varies with other load; not a benchmark).",
    ]
    notes = report.get("hygiene", {}).get("notes") or []
    if notes:
        lines += ["", "**Split notes:** " + " ".join(notes)]
    return "\n".join(lines) + "\n"
