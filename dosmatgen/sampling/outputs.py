"""Writing sampled crystals: ``generated_crystals_cif.zip``, ``generated_crystals.extxyz`` (MatterGen's names), the
Zarr run store (``store.zarr`` + manifest, :mod:`dosmatgen.runstore`), optional trajectories and a summary JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.io.atomic import atomic_write
from dosmatgen.io.structure_files import write_cif_zip, write_extxyz
from dosmatgen.runstore import RunLayout, RunStore, TargetPlan
from dosmatgen.sampling.generate import GenerationResult

CIF_ZIP = "generated_crystals_cif.zip"
EXTXYZ = "generated_crystals.extxyz"
TRAJECTORIES = "generated_trajectories.npz"
SUMMARY = "sampling.json"


def candidate_ids(n: int) -> list[str]:
    return [f"gen_{i:05d}" for i in range(n)]


def write_outputs(
    out_dir: str | Path,
    result: GenerationResult,
    *,
    batch_size: int,
    seed: int,
    conditioning: np.ndarray | None = None,
    summary: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write every output into ``out_dir``; returns the paths by kind. Invalid candidates (None) are left out of
    the CIF zip and the extxyz and stored as empty rows (num_atoms 0) in the run store."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = candidate_ids(len(result.crystals))
    valid = [(i, c) for i, c in zip(ids, result.crystals) if c is not None]
    paths: dict[str, Path] = {}
    if valid:
        paths["cif_zip"] = write_cif_zip(out / CIF_ZIP, [c for _, c in valid], [i for i, _ in valid])
        paths["extxyz"] = write_extxyz(out / EXTXYZ, [c for _, c in valid], [i for i, _ in valid])

    layout = RunLayout(
        shard_size=int(batch_size), max_atoms=int(max(result.num_atoms)), top_k=1, run_seed=int(seed), dos_grid=SITE_GRID
    )
    plan = TargetPlan(result.target_id, result.num_atoms, conditioning=conditioning, metadata=dict(summary or {}))
    store = RunStore.create(out, layout, [plan])
    target = store.target(result.target_id)
    for shard, shard_seed_value in enumerate(result.batch_seeds):
        a, b = target.shard_rows(shard)
        target.write_sampled(shard, result.crystals[a:b], shard_seed_value)
        target.mark_done("sample", shard, n_valid=sum(c is not None for c in result.crystals[a:b]))
    paths["run_store"] = out / "store.zarr"

    if result.trajectories:
        arrays: dict[str, np.ndarray] = {}
        for k, traj in enumerate(result.trajectories):
            arrays[f"batch{k}_steps"] = np.asarray(traj.steps, dtype=np.int64)
            arrays[f"batch{k}_atomic_numbers"] = np.stack([traj.atomic_numbers(f).numpy() for f in range(len(traj))])
            arrays[f"batch{k}_frac_coords"] = np.stack([f.numpy() for f in traj.frac_coords])
            arrays[f"batch{k}_lattice"] = np.stack([f.numpy() for f in traj.lattice])
        with atomic_write(out / TRAJECTORIES, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        paths["trajectories"] = out / TRAJECTORIES

    info = {**(summary or {}), "n": len(result.crystals), "n_valid": result.n_valid, "target_id": result.target_id,
            "batch_seeds": result.batch_seeds, "files": {k: str(v.name) for k, v in paths.items()}}
    with atomic_write(out / SUMMARY) as fh:
        json.dump(info, fh, indent=2, default=str)
    paths["summary"] = out / SUMMARY
    return paths
