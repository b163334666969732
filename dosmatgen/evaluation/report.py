"""``report.md``: one page that links the metrics, the table and every figure of an evaluation run."""

from __future__ import annotations

from typing import Any, Mapping


def report_markdown(report: Mapping[str, Any]) -> str:
    """The ``report.md`` text; figure paths in ``report["figures"]`` are relative to the output folder."""
    p = report["provenance"]
    h = report["hygiene"]
    lines = [
        "# dosmatgen evaluation report",
        "",
        "Reconstruction protocol of the DOSMatGen paper (Tables 1 and 2): each structure of the evaluated split is noised "
        "to t_start (t_start = T: from noise with its atom count), regenerated with ALL its sites conditioned on their "
        "DOS, and compared with itself.",
        "",
        "## Provenance",
        "",
        f"- split: `{p['split']}` of `{p['store']}` ({report['conditioning_set']['n_selected']} of "
        f"{report['conditioning_set']['n_available']} structures; limit {p['limit']}, seed {p['seed']})",
        f"- checkpoint: `{p['checkpoint']['path']}`, sha256 `{p['checkpoint']['sha256']}` "
        f"(epoch {p.get('checkpoint_epoch')}, step {p.get('checkpoint_step')})",
    ]
    for name in ("surrogate", "regressor"):
        rec = p.get(name)
        lines.append(f"- {name}: " + (f"`{rec['path']}`, sha256 `{rec['sha256']}`" if rec else "none"))
    unc = p.get("unconditional_model")
    if unc:
        rec = unc.get("file")
        lines.append(f"- classifier guidance's unconditional model: {unc['description']}"
                     + (f", `{rec['path']}`, sha256 `{rec['sha256']}`" if rec else ""))
    if p.get("condition_control", "none") != "none":
        lines.append(f"- **negative control**: condition `{p['condition_control']}` (not the structures' own DOS)")
    lines += [
        "- software: " + ", ".join(f"{k} {v}" for k, v in p["software"].items() if v),
        f"- started {p['started_utc']}, total {report['timing']['total_s']:.1f} s",
        "",
        "## Hidden-split hygiene",
        "",
        f"- evaluated split: `{h['split']}`" + (" (**forced** onto a training split)" if h["forced"] else ""),
    ]
    for name, splits in h["models"].items():
        lines.append(f"- {name}: trained on `{splits['train_split']}`, selected on `{splits['val_split']}` (from {splits['source']})")
    lines += [f"- {n}" for n in h.get("notes", [])]
    lines += ["- nothing is trained or tuned during evaluation; all settings are fixed before the run.", ""]
    lines += ["## Results", "", "- [metrics.md](metrics.md): our numbers next to the paper's (Tables 1 and 2)",
              "- [metrics.json](metrics.json): every number, per setting, with counts and baselines", ""]
    figures = report.get("figures", {})
    if figures:
        lines += ["## Figures", ""]
        for key, paths in figures.items():
            png = next((q for q in paths if q.endswith(".png")), None)
            svg = next((q for q in paths if q.endswith(".svg")), None)
            if png is None:
                continue
            lines += [f"### {key}", "", f"![{key}]({png})" + (f" ([SVG]({svg}))" if svg else ""), ""]
    zips = [(g, t, e["structures_file"]) for g, by_t in report["results"].items() for t, e in by_t.items() if e.get("structures_file")]
    if zips:
        lines += ["## Generated structures", ""] + [f"- {g}, t_start {t}: [{z}]({z}) (CIF zip; id = test id + `@gen`)" for g, t, z in zips] + [""]
    missing = report.get("not_run", [])
    if missing:
        lines += ["## Not run", ""] + [f"- {m}" for m in missing] + [""]
    return "\n".join(lines)
