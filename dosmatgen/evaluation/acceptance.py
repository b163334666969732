"""The science acceptance of the shipped models (issue 7), checked on an evaluation's results.

1. At t_start = T (from noise), CFG's MAE(ŷ_gen, y) is lower than the same model's with the condition masked out
   (``uncond``): the CFG interval lies wholly below the unconditioned one (95 % bootstrap over structures).
2. At t_start = T, CFG's MAE(ŷ_gen, y) is lower than the random-pair baseline, with non-overlapping intervals.
3. The structure match rate at t_start = 200 exceeds that at t_start = T (CFG).

A criterion whose settings were not run is reported as not evaluated (``passed`` None), never as passed.
"""

from __future__ import annotations

from typing import Any, Mapping

MATCH_T_START = 200


def _interval(results: Mapping[str, Any], guidance: str, t: int, which: str) -> dict[str, Any] | None:
    entry = (results.get(guidance) or {}).get(str(t)) or {}
    if entry.get("status") != "ok":
        return None
    return ((entry.get("metrics") or {}).get("dos_match_bootstrap") or {}).get(which)


def _fmt(ci: Mapping[str, Any]) -> str:
    return f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def _below(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, name: str, a_label: str, b_label: str) -> dict[str, Any]:
    if a is None or b is None or a.get("n_sites", 0) == 0 or b.get("n_sites", 0) == 0:
        return {"name": name, "passed": None, "detail": "not evaluated: a setting was not run or has no DOS match"}
    if any(ci.get(k) is None for ci in (a, b) for k in ("mean", "lo", "hi")):
        return {"name": name, "passed": None, "detail": "not evaluated: an interval is undefined (no finite DOS match)"}
    passed = bool(a["hi"] < b["lo"])
    relation = "below" if passed else "not wholly below"
    return {"name": name, "passed": passed,
            "detail": f"{a_label} {_fmt(a)} is {relation} {b_label} {_fmt(b)} (mean [95 % interval])"}


def science_acceptance(results: Mapping[str, Any], num_steps: int) -> dict[str, Any]:
    """The three criteria of the module docstring, each ``{"name", "passed", "detail"}``, and ``all_passed``."""
    T = int(num_steps)
    cfg_T = _interval(results, "cfg", T, "mae_gen_vs_target")
    criteria = [
        _below(cfg_T, _interval(results, "uncond", T, "mae_gen_vs_target"),
               f"CFG beats the unconditioned model at t_start {T}", "CFG MAE(ŷ_gen, y)", "unconditioned"),
        _below(cfg_T, _interval(results, "cfg", T, "random_pair"),
               f"CFG beats the random-pair baseline at t_start {T}", "CFG MAE(ŷ_gen, y)", "random pairs"),
    ]
    low = ((results.get("cfg") or {}).get(str(MATCH_T_START)) or {})
    high = ((results.get("cfg") or {}).get(str(T)) or {})
    name = f"structure match at t_start {MATCH_T_START} exceeds t_start {T} (CFG)"
    if low.get("status") == "ok" and high.get("status") == "ok" and T != MATCH_T_START:
        a, b = low["metrics"]["structure_match"], high["metrics"]["structure_match"]
        criteria.append({"name": name, "passed": bool(a["rate"] > b["rate"]),
                         "detail": f"{100 * a['rate']:.1f} % ({a['n_matched']}/{a['n']}) vs "
                                   f"{100 * b['rate']:.1f} % ({b['n_matched']}/{b['n']})"})
    else:
        criteria.append({"name": name, "passed": None, "detail": "not evaluated: both t_start values must be run with cfg"})
    evaluated = [c["passed"] for c in criteria if c["passed"] is not None]
    return {"criteria": criteria, "all_passed": bool(evaluated) and len(evaluated) == len(criteria) and all(evaluated)}


def acceptance_markdown(acceptance: Mapping[str, Any]) -> list[str]:
    lines = ["| criterion | result | numbers |", "|---|---|---|"]
    for c in acceptance["criteria"]:
        result = {True: "**pass**", False: "**fail**", None: "not evaluated"}[c["passed"]]
        lines.append(f"| {c['name']} | {result} | {c['detail']} |")
    return lines
