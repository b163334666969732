"""Summary statistics of a dataset store (what ``dosmatgen data info`` prints).

:func:`dataset_info` returns plain Python (JSON-ready); :func:`format_info` renders it as text.
DOS statistics are on the raw (unscaled) features: site features in states/eV per site, total features in
states/eV/atom; integrals are sums times the grid step (states per site or per atom within [-10, 10] eV).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from dosmatgen.data.store import DatasetStore
from dosmatgen.elements import symbol


def _stats(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0}
    q = np.percentile(x, [0, 5, 50, 95, 100])
    return {"n": int(x.size), "min": float(q[0]), "p5": float(q[1]), "median": float(q[2]), "p95": float(q[3]),
            "max": float(q[4]), "mean": float(x.mean())}


def dataset_info(store: DatasetStore) -> dict[str, Any]:
    """Counts, elements, atoms-per-structure histogram, split sizes, source counts and DOS statistics."""
    mem = store.to_memory()
    z_counts = Counter(int(z) for z in mem.atomic_numbers)
    structures_with = Counter()
    for i in range(mem.num_structures):
        for z in set(mem.atomic_numbers[mem.atom_slice(i)].tolist()):
            structures_with[int(z)] += 1
    info: dict[str, Any] = {
        "path": str(store.path),
        "schema_version": store.info.get("schema_version"),
        "has_dos": store.has_dos,
        "num_structures": mem.num_structures,
        "num_sites": mem.num_sites,
        "num_elements": len(z_counts),
        "elements": {symbol(z): {"sites": z_counts[z], "structures": structures_with[z]} for z in sorted(z_counts)},
        "atoms_per_structure": {int(k): int(v) for k, v in sorted(Counter(mem.num_atoms.tolist()).items())},
        "splits": {name: int(mem.split_indices(name).size) for name in ("train", "val", "test")},
        "sources": dict(sorted(Counter(mem.sources).items(), key=lambda kv: -kv[1])),
        "source_reader": store.info.get("source"),
        "provenance": store.info.get("provenance", {}),
        "split_dedup": {k: v for k, v in (store.info.get("split_dedup") or {}).items() if k != "moves"} or None,
    }
    if store.has_dos:
        site_step, total_step = store.site_grid.step, store.total_grid.step
        e_total = store.total_grid.energies
        below = e_total < 0
        info["dos"] = {
            "site_grid": store.site_grid.to_dict(),
            "total_grid": store.total_grid.to_dict(),
            "site_integral_states_per_site": _stats(mem.site_dos.sum(axis=1) * site_step),
            "site_max_states_per_ev": _stats(mem.site_dos.max(axis=1)),
            "total_integral_below_ef_states_per_atom": _stats(mem.total_dos[:, below].sum(axis=1) * total_step),
            "total_dos_at_ef_states_per_ev_atom": _stats(0.5 * (mem.total_dos[:, 127] + mem.total_dos[:, 128])),
            "properties": {name: _stats(v) for name, v in mem.properties.items()},
            "scalers": store.info.get("scalers", {}),
        }
        finite = np.isfinite(mem.efermi)
        info["efermi_ev"] = _stats(mem.efermi[finite])
    return info


def _fmt_stats(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "n/a"
    return f"median {s['median']:.4g} (5-95%: {s['p5']:.4g}..{s['p95']:.4g}; min {s['min']:.4g}, max {s['max']:.4g})"


def _dedup_line(dedup: dict[str, Any] | None) -> str:
    if not dedup:
        return "split dedup: not recorded (store built without it, or before it existed)"
    moved = dedup["moved"]
    return (f"split dedup: {dedup['num_moved']} structures moved to train as StructureMatcher twins "
            f"(from val {moved['val']}, from test {moved['test']})")


def format_info(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`dataset_info`."""
    lines = [
        f"store: {info['path']} (schema v{info['schema_version']}, {'with DOS' if info['has_dos'] else 'structures only'})",
        f"structures: {info['num_structures']}   sites: {info['num_sites']}   elements: {info['num_elements']}",
        "splits: " + ", ".join(f"{k} {v}" for k, v in info["splits"].items()),
        _dedup_line(info.get("split_dedup")),
        "sources: " + ", ".join(f"{k} {v}" for k, v in info["sources"].items()),
        "elements (sites): " + " ".join(f"{el}:{d['sites']}" for el, d in info["elements"].items()),
        "atoms per structure:",
    ]
    hist = info["atoms_per_structure"]
    top = max(hist.values()) if hist else 1
    for n, count in hist.items():
        bar = "#" * max(1, round(40 * count / top))
        lines.append(f"  {n:>4} {count:>7}  {bar}")
    if info["has_dos"]:
        d = info["dos"]
        lines += [
            "DOS statistics (raw features):",
            f"  site integral [states/site]:          {_fmt_stats(d['site_integral_states_per_site'])}",
            f"  site max [states/eV]:                 {_fmt_stats(d['site_max_states_per_ev'])}",
            f"  total below E_F [states/atom]:        {_fmt_stats(d['total_integral_below_ef_states_per_atom'])}",
            f"  total DOS(E_F) [states/eV/atom]:      {_fmt_stats(d['total_dos_at_ef_states_per_ev_atom'])}",
        ]
        if d["properties"]:
            lines.append("DOS-derived properties:")
            width = max(len(k) for k in d["properties"])
            lines += [f"  {name:<{width}}  {_fmt_stats(s)}" for name, s in d["properties"].items()]
        sc = d.get("scalers") or {}
        if sc:
            lines.append(f"scalers: {sc.get('kind')} fitted on {sc.get('fitted_on')} ({sc.get('num_structures')} structures)")
    prov = info.get("provenance") or {}
    if prov:
        lines.append("provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items()))
    return "\n".join(lines)
