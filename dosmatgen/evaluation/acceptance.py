"""The science acceptance of the shipped models (issues 7 and 19), checked on an evaluation's results.

Every criterion compares two guidance modes on the SAME structures, started from the same noised templates with
the same seeds (:func:`~dosmatgen.evaluation.reconstruction.setting_stream`), so only what the modes do with the
DOS condition differs. At t_start 200 and at t_start T (from noise):

1. CFG's DOS MAE(ŷ_gen, y) is lower than the unconditioned model's (``uncond``, every site masked out);
2. CFG's structure match rate is higher than ``uncond``'s;
3. CFG's DOS MAE is lower than one plain conditional pass (``none``, w = 0): the guidance term itself helps.

Each is decided by a 95 % paired bootstrap interval of the difference over structures
(:func:`~dosmatgen.evaluation.bootstrap.paired_difference`; DOS MAE weighted by the structure's site count, as the
pooled MAE is): the criterion passes only when the whole interval lies on the right side of 0, for DOS MAE beyond
:data:`MIN_MAE_DIFFERENCE` (a smaller gain is numerical noise: CFG's doubled batch and ``(1 + w)·u − w·u`` round
differently from one pass). With the condition
zeroed (masked out in every mode) the modes produce the same structures, every difference is 0 and every criterion
fails; a criterion cannot pass on what the template or the atom count alone carry.

The random-pair comparison at T (CFG's MAE against the same structures scored on other structures' DOS) is
reported under ``informative``: it does not decide acceptance, because it can pass with the condition masked out
(the atom count and the template alone correlate a structure with its own DOS).

A criterion whose settings were not run (or ran before per-structure results were recorded) is reported as not
evaluated (``passed`` None), never as passed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from dosmatgen.evaluation.bootstrap import paired_difference

MATCH_T_START = 200
#: smallest CFG gain in DOS MAE (scaled site DOS, per site) that counts; the surrogate's own error is about 0.3
MIN_MAE_DIFFERENCE = 0.002


def _entry(results: Mapping[str, Any], guidance: str, t: int) -> Mapping[str, Any] | None:
    entry = (results.get(guidance) or {}).get(str(t)) or {}
    return entry if entry.get("status") == "ok" else None


def _fmt(ci: Mapping[str, Any]) -> str:
    return f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def _paired_values(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], key: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Per-structure values of ``key`` in two settings, paired by structure id: (a, b, site counts, n left out for an
    undefined value). None when a setting lacks the key (run before per-structure results were recorded)."""
    if not a or not b or any(key not in r for r in (*a, *b)):
        return None
    by_id = {r["id"]: r for r in b}
    va, vb, w, dropped = [], [], [], 0
    for r in a:
        other = by_id.get(r["id"])
        if other is None:
            return None
        x, y = r[key], other[key]
        if x is None or y is None:
            dropped += 1
            continue
        va.append(float(x))
        vb.append(float(y))
        w.append(float(r.get("num_atoms") or 1))
    return np.array(va), np.array(vb), np.array(w), dropped


def _compare(results: Mapping[str, Any], t: int, other: str, metric: str, seed: int) -> dict[str, Any]:
    """CFG against ``other`` at t_start ``t`` on ``metric`` ("dos_mae": lower is better; "structure_match": higher)."""
    label = {"uncond": "the unconditioned model (uncond)", "none": "one conditional pass (none, w = 0)"}[other]
    what = {"dos_mae": "DOS MAE(ŷ_gen, y)", "structure_match": "structure match"}[metric]
    name = f"CFG beats {label} on {what} at t_start {t}"
    a, b = _entry(results, "cfg", t), _entry(results, other, t)
    if a is None or b is None:
        return {"name": name, "passed": None, "detail": f"not evaluated: cfg and {other} must both be run at t_start {t}"}
    key = "mae_gen_vs_target" if metric == "dos_mae" else "structure_match"
    paired = _paired_values(a.get("per_sample") or [], b.get("per_sample") or [], key)
    if paired is None:
        return {"name": name, "passed": None,
                "detail": f"not evaluated: no per-structure {what} in both settings (an older run, or no surrogate)"}
    va, vb, w, dropped = paired
    if va.size == 0:
        return {"name": name, "passed": None, "detail": f"not evaluated: no structure with a defined {what} in both"}
    weights = w if metric == "dos_mae" else np.ones_like(w)
    diff = paired_difference(va, vb, weights, seed=seed)
    if metric == "dos_mae":
        passed = bool(diff["hi"] < -MIN_MAE_DIFFERENCE)
        shown = diff
        unit = ""
    else:  # rates in percent
        passed = bool(diff["lo"] > 0.0)
        shown = {k: 100.0 * diff[k] for k in ("mean", "lo", "hi")}
        unit = " points"
    left = f", {dropped} left out (undefined in one of them)" if dropped else ""
    detail = (f"CFG − {other} = {_fmt(shown)}{unit} (mean [95 % paired bootstrap]); CFG {_mean(va, weights, metric)}, "
              f"{other} {_mean(vb, weights, metric)}; {va.size} structures{left}")
    return {"name": name, "passed": passed, "detail": detail, "difference": diff, "n_structures": int(va.size),
            "n_left_out": int(dropped)}


def _mean(values: np.ndarray, weights: np.ndarray, metric: str) -> str:
    m = float(np.sum(values * weights) / np.sum(weights))
    return f"{m:.3f}" if metric == "dos_mae" else f"{100 * m:.1f} %"


def _random_pairs(results: Mapping[str, Any], T: int) -> dict[str, Any]:
    name = f"CFG beats the random-pair baseline at t_start {T}"
    e = _entry(results, "cfg", T)
    boot = ((e or {}).get("metrics") or {}).get("dos_match_bootstrap") or {}
    a, b = boot.get("mae_gen_vs_target"), boot.get("random_pair")
    if not a or not b or any(ci.get(k) is None for ci in (a, b) for k in ("mean", "lo", "hi")):
        return {"name": name, "passed": None, "detail": "not evaluated: cfg at T was not run or has no finite DOS match"}
    passed = bool(a["hi"] < b["lo"])
    return {"name": name, "passed": passed, "detail": f"CFG MAE(ŷ_gen, y) {_fmt(a)} is {'below' if passed else 'not wholly below'} "
                                                      f"random pairs {_fmt(b)} (mean [95 % interval])"}


def science_acceptance(results: Mapping[str, Any], num_steps: int, seed: int = 0) -> dict[str, Any]:
    """The criteria of the module docstring, each ``{"name", "passed", "detail", ...}``, ``all_passed`` (every
    criterion evaluated and passed) and the ``informative`` comparisons."""
    T = int(num_steps)
    t_values = [MATCH_T_START, T] if MATCH_T_START < T else [T]
    criteria = []
    for t in t_values:
        criteria.append(_compare(results, t, "uncond", "dos_mae", seed))
        criteria.append(_compare(results, t, "uncond", "structure_match", seed))
        criteria.append(_compare(results, t, "none", "dos_mae", seed))
    evaluated = [c["passed"] for c in criteria if c["passed"] is not None]
    return {"criteria": criteria, "all_passed": len(evaluated) == len(criteria) and all(evaluated),
            "informative": [_random_pairs(results, T)]}


def acceptance_markdown(acceptance: Mapping[str, Any]) -> list[str]:
    lines = ["| criterion | result | numbers |", "|---|---|---|"]
    for c in acceptance["criteria"]:
        result = {True: "**pass**", False: "**fail**", None: "not evaluated"}[c["passed"]]
        lines.append(f"| {c['name']} | {result} | {c['detail']} |")
    for c in acceptance.get("informative") or []:
        result = {True: "holds", False: "does not hold", None: "not evaluated"}[c["passed"]]
        lines.append(f"| (informative, not a criterion) {c['name']} | {result} | {c['detail']} |")
    return lines
