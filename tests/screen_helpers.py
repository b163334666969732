"""Helpers for the screen / run-store / cluster tests (imported by submitit and Ray worker processes too:
tests put this folder on PYTHONPATH).

``load_test_engine`` is a test double of the DFT engine contract (Gaussian bands, no physics) so that the
orchestration can be tested in seconds; the real GPAW engine runs in the slow gpaw-marked test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTCalculationError
from dosmatgen.dos.grid import GPAW_V1_GRID, EnergyGrid
from dosmatgen.dos.record import DOSRecord
from dosmatgen.runstore import RunLayout, RunStore, TargetPlan

TESTS_DIR = Path(__file__).resolve().parent


class FailOnceEngine:
    """Gaussian-band DOS; a structure whose id has a file in ``fail_dir`` fails once (the file is removed)."""

    def __init__(self, fail_dir: str | None = None):
        self.fail_dir = fail_dir

    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        if self.fail_dir:
            marker = Path(self.fail_dir) / id
            if marker.exists():
                marker.unlink()
                raise DFTCalculationError("not_converged", f"test engine fails {id} once")
        e = GPAW_V1_GRID.energies
        site = np.stack([np.stack([np.exp(-((e + z / 10.0 + l) ** 2)) for l in range(3)]) for z in crystal.atomic_numbers])
        (Path(workdir) / "engine.log").write_text(f"{id} pid={os.getpid()}\n")
        return DOSRecord(id=id, source="test", crystal=crystal, energies=e, site_dos=site,
                         total_dos=site.sum(axis=(0, 1)), efermi=0.5, energy=-1.0 * crystal.num_atoms)


def load_test_engine(fail_dir: str | None = None) -> FailOnceEngine:
    return FailOnceEngine(fail_dir)


def small_layout(shard_size: int = 4, max_atoms: int = 4, top_k: int = 2, seed: int = 0) -> RunLayout:
    return RunLayout(shard_size, max_atoms, top_k, seed, EnergyGrid(-10.0, 10.0, 401), ("s", "p", "d"))


def small_store(root: Path, n: int = 10, shard_size: int = 4, targets: tuple[str, ...] = ("t0",), seed: int = 0) -> RunStore:
    plans = [TargetPlan(t, np.resize(np.array([2, 3]), n)) for t in targets]
    return RunStore.create(root, small_layout(shard_size, seed=seed), plans)


def write_config(path: Path, run_dir: Path, **sections: Any) -> Path:
    """A tiny screen config (baseline sampler, EMT relaxer, formation-energy ranking, test DFT engine)."""
    cfg: dict[str, Any] = {
        "run": {"dir": str(run_dir), "seed": 0, "shard_size": 3, "max_atoms": 4},
        "targets": [{"id": "a", "unconditioned": True, "num_atoms": [2, 3], "candidates_per_num_atoms": 4}],
        "sample": {"backend": "inline", "loader": "dosmatgen.screen.baseline:load_random_sampler",
                   "options": {"elements": ["Al", "Cu", "Ni"], "volume_per_atom": 14.0}},
        "relax": {"backend": "inline", "loader": "dosmatgen.screen.baseline:load_emt_relaxer",
                  "options": {"fmax": 0.2, "steps": 8},
                  "filter": {"require_converged": False, "min_distance": 1.0}},
        "rank": {"top_k": 2},
        "dft": {"backend": "inline", "loader": "screen_helpers:load_test_engine", "options": {}, "max_attempts": 2},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


class SlowSampler:
    """The random baseline sampler with a fixed delay per shard (to have time to kill an actor mid-run)."""

    def __init__(self, delay_s: float, device: str = "cpu"):
        from dosmatgen.screen.baseline import load_random_sampler

        self.inner = load_random_sampler(["Al", "Cu"], 14.0, 1.5)
        self.delay_s = float(delay_s)

    def __call__(self, target, num_atoms, seed):
        import time

        time.sleep(self.delay_s)
        return self.inner(target, num_atoms, seed)


def load_slow_sampler(delay_s: float = 0.5, device: str = "cpu") -> SlowSampler:
    return SlowSampler(delay_s, device)


def synthetic_training_set(n: int = 16, seed: int = 0, atoms: int | None = None):
    """(train, None): ``n`` random crystals of 2-3 atoms (or ``atoms`` each) with random positive site DOS (400 bins),
    as torch Data with ``idx`` (the structure's index, as ``CrystalDOSDataset`` sets it)."""
    import torch

    from dosmatgen.batch import crystal_to_data

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        k = atoms if atoms else 2 + i % 2
        c = Crystal(rng.integers(1, 30, size=k), rng.random((k, 3)), np.eye(3) * (3.0 + rng.random()))
        data = crystal_to_data(c, node_fields={"site_dos": torch.as_tensor(rng.random((k, 400)), dtype=torch.float32)})
        data.idx = torch.tensor([i], dtype=torch.long)
        items.append(data)
    return items, None


def tiny_run_config() -> dict[str, Any]:
    return {
        "model": {"hidden_dim": 16, "num_layers": 1, "num_freqs": 4, "time_dim": 8},
        "diffusion": {"num_steps": 20},
        "training": {"batch_size": 8, "epochs": 2, "lr": 1e-3, "seed": 0},
    }


class RescalingRelaxer:
    """Test double of the relaxer contract: scales each cell to ``volume_per_atom`` (a tiny test model samples
    absurd cells) and gives a deterministic pseudo formation energy in [-0.5, 0.5) eV/atom; no physics."""

    def __init__(self, volume_per_atom: float = 20.0):
        self.volume_per_atom = float(volume_per_atom)

    def __call__(self, crystals: list[Crystal]):
        from dosmatgen.screen.stages import RelaxOutcome

        out = []
        for c in crystals:
            vol = abs(float(np.linalg.det(c.lattice)))
            if not np.isfinite(vol) or vol <= 0:
                out.append(RelaxOutcome(None, error="degenerate cell"))
                continue
            lattice = c.lattice * (self.volume_per_atom * c.num_atoms / vol) ** (1.0 / 3.0)
            fe = float((int(np.sum(c.atomic_numbers)) % 10) / 10.0 - 0.5)
            out.append(RelaxOutcome(Crystal(c.atomic_numbers, c.frac_coords, lattice), -1.0, -1.0 + fe, fe, 1, True))
        return out


def load_rescaling_relaxer(volume_per_atom: float = 20.0) -> RescalingRelaxer:
    return RescalingRelaxer(volume_per_atom)
