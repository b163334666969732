"""The discovery loop's test fixtures: a synthetic DOS store with a tiny denoiser and surrogate trained on it,
and loop + screen configs over them (analytic DFT engine, rescaling test relaxer). Imported by tests/test_loop.py
and tests/test_cluster_loop.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml


def train_loop_models(root: Path) -> dict[str, Any]:
    """A synthetic DOS store with a tiny denoiser and a tiny site surrogate trained on it, and their configs."""
    from surrogate_fixture_helpers import write_synthetic_dos_store

    from dosmatgen.data.torch_dataset import CrystalDOSDataset
    from dosmatgen.surrogate.config import SurrogateTrainConfig
    from dosmatgen.surrogate.train import train_surrogate
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.trainer import train

    store = write_synthetic_dos_store(root / "base.zarr", n=40)
    run_cfg = {"model": {"hidden_dim": 16, "num_layers": 1, "num_freqs": 4, "time_dim": 8, "cond_mode": "site"},
               "diffusion": {"num_steps": 20},
               "training": {"batch_size": 8, "epochs": 1, "lr": 1e-3, "seed": 0},
               "data": {"store": None, "train_split": "train", "val_split": "val"}}
    (root / "denoiser.yaml").write_text(yaml.safe_dump(run_cfg))
    ds = CrystalDOSDataset(store, "train")
    den = train(RunConfig.from_dict(run_cfg), ds, None, root / "den", epochs=1, progress=False, scalers=ds.store.scalers)
    sur_cfg = {"preset": "tiny", "epochs": 2, "batch_size": 8, "lr": 3e-3, "seed": 0, "num_threads": 1}
    (root / "surrogate.yaml").write_text(yaml.safe_dump(sur_cfg))
    sur = train_surrogate(store, root / "sur", SurrogateTrainConfig.from_dict(sur_cfg))
    target = root / "target.csv"
    e = np.linspace(-10, 10, 401)
    target.write_text("energy,dos\n" + "\n".join(f"{x:.3f},{np.exp(-0.5 * ((x + 1.0) / 0.7) ** 2):.6f}" for x in e))
    return {"root": root, "store": store, "denoiser": str(den.last_checkpoint), "surrogate": str(sur.checkpoint),
            "target": target}


def write_loop(tmp: Path, m: dict, *, rounds: int = 2, fine_tune: bool = True, top_k: int = 2, explore: int = 1,
               target: str | None = None, name: str = "loop", backends: dict[str, Any] | None = None) -> Path:
    """Loop config ``tmp/NAME.yaml`` over ``tmp/screen.yaml``; ``backends`` switches to the cluster backends:
    {"sample": {...ray options}, "relax": {...dask options}, "dft": {...submitit options}, "train": {...ray}}."""
    screen = {
        "run": {"dir": str(tmp / "unused"), "seed": 0, "shard_size": 4, "max_atoms": 4},
        "targets": [{"id": "t", "target": target or str(m["target"]), "site": 0, "num_atoms": [2, 3],
                     "candidates_per_num_atoms": 4}],
        "sample": {"backend": "inline", "loader": "dosmatgen.screen.library_stages:load_diffusion_sampler",
                   "options": {"checkpoint": m["denoiser"], "w": 1.0, "condition_sites": [0]}},
        "relax": {"backend": "inline", "loader": "screen_helpers:load_rescaling_relaxer", "options": {},
                  "filter": {"require_converged": False, "min_distance": 0.5, "volume_per_atom": [1.0, 500.0]}},
        "rank": {"loader": "dosmatgen.screen.library_stages:load_surrogate_scorer",
                 "options": {"checkpoint": m["surrogate"], "site": 0}, "top_k": 1},
        "dft": {"backend": "inline", "loader": "dosmatgen.dft.engine:get_engine", "options": {"name": "analytic"},
                "max_attempts": 1},
    }
    if backends:
        screen["sample"].update(backend="ray", ray=backends["sample"])
        screen["relax"].update(backend="dask", dask=backends["relax"])
        screen["dft"].update(backend="submitit", submitit=backends["dft"])
    (tmp / "screen.yaml").write_text(yaml.safe_dump(screen))
    loop = {"loop": {"dir": str(tmp / name), "rounds": rounds, "seed": 3, "fine_tune": fine_tune,
                     "base_store": str(m["store"])},
            "screen": {"config": "screen.yaml"},
            "dft": {"top_k": top_k, "explore": explore, "explore_pool": 1.0},
            "train": {"backend": "inline", "loop_weight": 3,
                      "denoiser": {"config": str(m["root"] / "denoiser.yaml"), "epochs": 1},
                      "surrogate": {"config": str(m["root"] / "surrogate.yaml"), "epochs": 1}}}
    if backends:
        loop["train"].update(backend="ray", ray=backends["train"])
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(loop))
    return path
