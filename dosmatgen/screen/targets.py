"""Target plans from a screen config: the conditioning site DOS and the candidate plan of each target."""

from __future__ import annotations

import numpy as np

from dosmatgen.runstore import RunLayout, TargetPlan
from dosmatgen.screen.config import ScreenConfig, TargetConfig


def conditioning_dos(t: TargetConfig) -> tuple[np.ndarray | None, dict]:
    """(site DOS (400,) on SITE_GRID, unscaled states/eV, or None; metadata) of one target config."""
    if t.unconditioned:
        return None, {"source": "unconditioned"}
    from dosmatgen.targets import resolve_target

    target = resolve_target(t.target)  # type: ignore[arg-type]
    meta = {"source": t.target, "name": target.name, "description": target.description}
    if target.reference is not None:
        meta["reference_formula"] = target.reference.formula
        meta["reference_sites"] = list(target.reference_sites)
    return np.asarray(target.features, dtype=np.float64), meta


def target_plans(cfg: ScreenConfig) -> list[TargetPlan]:
    """One plan per target: ``candidates_per_num_atoms`` candidates of each size, mixed so that every shard holds
    the same mix of sizes (:func:`dosmatgen.screen.shard_mix.balanced_order`)."""
    from dosmatgen.screen.shard_mix import balanced_order

    plans = []
    for t in cfg.targets:
        cond, meta = conditioning_dos(t)
        num_atoms = balanced_order(np.repeat(np.asarray(t.num_atoms, dtype=np.int64), t.candidates_per_num_atoms),
                                   cfg.shard_size)
        plans.append(TargetPlan(t.id, num_atoms, cond, {**meta, "site": t.site, "num_atoms": list(t.num_atoms)}))
    return plans


def run_layout(cfg: ScreenConfig) -> RunLayout:
    return RunLayout(cfg.shard_size, cfg.max_atoms, cfg.top_k, cfg.seed, cfg.dos_grid, cfg.dos_channels)
