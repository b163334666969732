"""End-of-run summary of a screening run: counts per stage, the ranked table, DOS overlays, a histogram.

Writes into ``<run>/summary/``: ``summary.json`` (counts), ``ranked.csv`` and ``ranked.md`` (one row per selected
candidate), ``cifs/`` (the relaxed selected candidates),
``formation_energy_hist.png`` and ``dos_overlay_<target>.png`` (target site DOS vs. DFT site DOS of the
conditioned site of each DFT-validated candidate, on SITE_GRID, states/eV), and, when the run ranks with the
DOS surrogate, ``comparisons/<target>_<rank>.png``: target vs surrogate vs DFT per DFT-checked candidate (Fig. 8).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import StoreError
from dosmatgen.runstore import RunStore, describe_flags


def stage_counts(store: RunStore) -> dict[str, dict[str, int]]:
    """Per target: candidates planned / sampled / valid / relaxed / passed / scored / selected / dft_done / dft_failed."""
    out = {}
    for t in store.targets():
        m = store.manifest
        done_sample = m.done_units("sample", t.id)
        sampled = sum(t.shard_rows(s)[1] - t.shard_rows(s)[0] for s in range(t.num_shards) if str(s) in done_sample)
        num = t.column("sample/num_atoms")
        flags = t.column("relax/flags")
        relaxed_shards = m.done_units("relax", t.id)
        relaxed_rows = np.zeros(t.n_candidates, dtype=bool)
        for s in range(t.num_shards):
            if str(s) in relaxed_shards:
                a, b = t.shard_rows(s)
                relaxed_rows[a:b] = True
        scores = t.column("rank/score")
        rows, _ = t.selection()
        out[t.id] = {
            "planned": t.n_candidates,
            "sampled": int(sampled),
            "valid": int((num > 0).sum()),
            "relaxed": int((relaxed_rows & np.isfinite(t.column("relax/energy_relaxed"))).sum()),
            "passed_filters": int((relaxed_rows & (flags == 0) & (num > 0)).sum()),
            "scored": int(np.isfinite(scores).sum()),
            "selected": int(rows.size),
            "dft_done": len(m.done_units("dft", t.id)),
            "dft_failed": len([f for f in m.failures("dft", t.id) if not m.is_done("dft", t.id, f["unit"])]),
        }
    return out


#: stages whose units record their run time (``seconds``) in the manifest
TIMED_STAGES = ("sample", "relax", "dft")


def stage_accounting(store: RunStore) -> dict[str, Any]:
    """Compute time per stage: the sum of the manifests' ``seconds`` (one unit holds one worker: one GPU for a GPU
    actor or a GPU-pinned Dask worker, one CPU node for a VASP DFT job) as ``worker_hours``; plus, when the cluster
    side recorded them (``<run>/accounting/slurm.json``, from sacct), the Slurm jobs' node-hours and GPU-hours."""
    stages: dict[str, Any] = {}
    for stage in TIMED_STAGES:
        seconds, units = 0.0, 0
        for t in store.targets():
            for unit in store.manifest.done_units(stage, t.id):
                seconds += float(store.manifest.done_info(stage, t.id, unit).get("seconds", 0.0))
                units += 1
        stages[stage] = {"units": units, "worker_hours": seconds / 3600.0}
    out: dict[str, Any] = {"stages": stages}
    slurm = store.root / "accounting" / "slurm.json"
    if slurm.is_file():
        recorded = json.loads(slurm.read_text())
        jobs = recorded["jobs"]
        if recorded.get("error"):
            out["slurm_error"] = recorded["error"]
        out["slurm"] = {role: {"jobs": sum(1 for j in jobs if j.get("role") == role),
                               "node_hours": sum(j["node_hours"] for j in jobs if j.get("role") == role),
                               "gpu_hours": sum(j["gpu_hours"] for j in jobs if j.get("role") == role)}
                        for role in ("screen", "dft")}
    return out


def accounting_markdown(acc: dict[str, Any]) -> str:
    lines = ["", "## Compute", "", "| stage | units | worker-hours |", "|---|---|---|"]
    lines += [f"| {k} | {v['units']} | {v['worker_hours']:.4g} |" for k, v in acc["stages"].items()]
    if acc.get("slurm_error"):
        lines += ["", f"Slurm accounting unavailable: {acc['slurm_error']}"]
    elif "slurm" in acc:
        lines += ["", "| Slurm jobs (sacct) | jobs | node-hours | GPU-hours |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['jobs']} | {v['node_hours']:.4g} | {v['gpu_hours']:.4g} |" for k, v in acc["slurm"].items()]
    return "\n".join(lines) + "\n"


def failed_shards(store: RunStore) -> list[dict[str, Any]]:
    """Shards given up after their retries, with the stage, the attempts and the last error."""
    from dosmatgen.screen.stages import given_up_shards

    return [{"target": t.id, "shard": shard, "stage": f["stage"], "attempts": int(f.get("attempts", 0)), "error": f["error"]}
            for t in store.targets() for shard, f in sorted(given_up_shards(store, t.id).items())]


def flag_reasons(store: RunStore) -> dict[str, dict[str, int]]:
    out = {}
    for t in store.targets():
        counts: dict[str, int] = {}
        for f in np.unique(t.column("relax/flags")):
            if f:
                n = int((t.column("relax/flags") == f).sum())
                for reason in describe_flags(int(f)):
                    counts[reason] = counts.get(reason, 0) + n
        out[t.id] = counts
    return out


def ranked_rows(store: RunStore) -> list[dict[str, Any]]:
    table = []
    for t in store.targets():
        rows, scores = t.selection()
        S = t.layout.shard_size
        for k, (row, score) in enumerate(zip(rows, scores)):
            crystal = t.read_crystals("relax", int(row) // S)[int(row) % S]
            done = store.manifest.is_done("dft", t.id, k)
            table.append({
                "target": t.id, "rank": k + 1, "row": int(row),
                "formula": crystal.formula if crystal is not None else "",
                "num_atoms": crystal.num_atoms if crystal is not None else 0,
                "formation_energy_eV_per_atom": float(t.column("relax/formation_energy")[int(row)]),
                "energy_relaxed_eV_per_atom": float(t.column("relax/energy_relaxed")[int(row)]),
                "energy_above_hull_eV_per_atom": _optional(t, "relax/energy_above_hull", int(row)),
                "score": float(score),
                "dft": "done" if done else ("failed" if any(int(f["unit"]) == k for f in store.manifest.failures("dft", t.id)) else "pending"),
                "dft_energy_eV": t.read_dft(k)["energy"] if done else float("nan"),
            })
    return table


def _optional(t, name: str, row: int) -> float:
    """A per-candidate value that older runs lack (NaN then)."""
    try:
        return float(t.column(name)[row])
    except StoreError:
        return float("nan")


def ranked_markdown(table: list[dict[str, Any]]) -> str:
    """The ranked table as Markdown (one row per selected candidate, best first)."""
    cols = ["target", "rank", "formula", "num_atoms", "score", "formation_energy_eV_per_atom", "dft"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table:
        cells = [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_top_cifs(store: RunStore, folder: Path) -> list[str]:
    """Write the relaxed structure of every selected candidate as ``<target>_rank<k>_<formula>.cif``."""
    from dosmatgen.io.structure_files import write_cif

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t in store.targets():
        rows, _ = t.selection()
        S = t.layout.shard_size
        for k, row in enumerate(rows):
            crystal = t.read_crystals("relax", int(row) // S)[int(row) % S]
            if crystal is None:
                continue
            name = f"{t.id}_rank{k + 1}_{crystal.formula}.cif"
            write_cif(folder / name, [crystal], [f"{t.id}_rank{k + 1}"])
            written.append(f"cifs/{name}")
    return written


def _site_dos_on_site_grid(store: RunStore, t, k: int, site: int) -> np.ndarray:
    """The DFT site DOS of ``site`` as site features (channels summed, smoothed and resampled onto SITE_GRID
    exactly like the target features), so that the overlay compares like with like."""
    from dosmatgen.dos.featurize import site_features_from_arrays

    d = t.read_dft(k)["site_dos"]  # (n_atoms, C, G) on the run grid
    values = np.clip(np.asarray(d[min(site, d.shape[0] - 1)], dtype=np.float64).sum(axis=0), 0.0, None)
    return site_features_from_arrays(t.layout.dos_grid.energies, values[None, :])[0]


def site_target_dos(t) -> np.ndarray | None:
    """The target's site DOS (SITE_GRID), or None for an unconditioned target or a per-candidate conditioning
    (a design run's total DOS rows, which the design summary plots itself)."""
    cond = t.conditioning()
    return cond if cond is not None and cond.ndim == 1 else None


def write_comparisons(store: RunStore, out: Path, predict_site_dos: Callable[[Crystal], np.ndarray]) -> list[str]:
    """The paper's Fig. 8 for every DFT-checked candidate: target vs surrogate vs DFT DOS of the conditioned site,
    on the target's grid in states/eV. ``predict_site_dos(crystal)`` gives (n_atoms, 400) states/eV.
    Files ``comparisons/<target>_<rank>.png`` (and .svg); returns their names relative to ``out``."""
    from dosmatgen.plots.surrogate_comparison import plot_target_surrogate_dft

    names = []
    (out / "comparisons").mkdir(parents=True, exist_ok=True)
    for t in store.targets():
        cond = site_target_dos(t)
        if cond is None:
            continue
        site = int(t.metadata.get("site", 0))
        rows, _ = t.selection()
        S = t.layout.shard_size
        for k in sorted(int(x) for x in store.manifest.done_units("dft", t.id)):
            row = int(rows[k])
            crystal = t.read_crystals("relax", row // S)[row % S]
            if crystal is None or site >= crystal.num_atoms:
                continue
            surrogate = np.asarray(predict_site_dos(crystal), dtype=np.float64)[site]
            dft = _site_dos_on_site_grid(store, t, k, site)
            title = f"{t.id} #{k + 1}: {crystal.formula}, site {site} ({crystal.symbols[site]})"
            paths = plot_target_surrogate_dft(np.asarray(cond, dtype=np.float64), surrogate, dft,
                                              out / "comparisons" / f"{t.id}_{k + 1}.png", title=title)
            names.extend(str(Path(p).relative_to(out)) for p in paths if str(p).endswith(".png"))
    return names


def write_summary(store: RunStore, out_dir: str | Path | None = None,
                  predict_site_dos: Callable[[Crystal], np.ndarray] | None = None) -> dict[str, Any]:
    """Write the summary files and return the summary dict. With ``predict_site_dos`` (the ranking surrogate,
    see :func:`dosmatgen.screen.library_stages.site_dos_predictor`) it also writes the per-candidate target vs
    surrogate vs DFT comparisons (:func:`write_comparisons`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir or store.root / "summary")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"run": str(store.root), "counts": stage_counts(store), "filter_reasons": flag_reasons(store),
               "failed_shards": failed_shards(store)}
    table = ranked_rows(store)
    with open(out / "ranked.csv", "w", newline="") as fh:
        if table:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    summary["accounting"] = stage_accounting(store)
    (out / "ranked.md").write_text(ranked_markdown(table) + accounting_markdown(summary["accounting"]))
    summary["cifs"] = write_top_cifs(store, out / "cifs")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for t in store.targets():
        fe = t.column("relax/formation_energy")
        fe = fe[np.isfinite(fe)]
        if fe.size:
            ax.hist(fe, bins=30, alpha=0.6, label=t.id)
    ax.set_xlabel("formation energy (eV/atom)")
    ax.set_ylabel("candidates")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "formation_energy_hist.png", dpi=120)
    plt.close(fig)
    plots = []
    for t in store.targets():
        cond = site_target_dos(t)
        done = sorted(int(k) for k in store.manifest.done_units("dft", t.id))
        if not done and cond is None:
            continue
        site = int(t.metadata.get("site", 0))
        fig, ax = plt.subplots(figsize=(6, 3.5))
        e = SITE_GRID.energies
        if cond is not None:
            ax.plot(e, cond, color="k", lw=2, label="target")
        for k in done[:8]:
            ax.plot(e, _site_dos_on_site_grid(store, t, k, site), lw=1, label=f"#{k + 1}")
        ax.set_xlabel("E - E_F (eV)")
        ax.set_ylabel(f"site {site} DOS (states/eV)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"dos_overlay_{t.id}.png"
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        plots.append(name)
    if predict_site_dos is not None:
        plots.extend(write_comparisons(store, out, predict_site_dos))
    summary["plots"] = ["formation_energy_hist.png", *plots]
    summary["ranked_csv"] = "ranked.csv"
    summary["ranked_md"] = "ranked.md"
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    keys = ["planned", "sampled", "valid", "relaxed", "passed_filters", "scored", "selected", "dft_done", "dft_failed"]
    lines = ["target".ljust(16) + "".join(k.rjust(15) for k in keys)]
    for tid, c in summary["counts"].items():
        lines.append(tid.ljust(16) + "".join(str(c[k]).rjust(15) for k in keys))
    return "\n".join(lines)
