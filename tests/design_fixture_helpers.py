"""Helpers for the design tests: a tiny total-DOS generator trained for one epoch on a slice of the bundled store,
and a fake of the ``dosmatgen.dos_sampler`` API (the DOS generator of issue 16, built on another branch)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dosmatgen.dos.grid import TOTAL_GRID


def train_tiny_total(out: Path, n_structures: int = 16) -> str:
    """A cond_mode 'total' denoiser (hidden 16, 20 steps) after one epoch on the first train structures."""
    from torch.utils.data import Subset

    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.torch_dataset import CrystalDOSDataset
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.trainer import train

    ds = CrystalDOSDataset(str(bundled_dataset_path()), "train", scaled=True)
    small = [i for i in range(len(ds)) if ds[i].num_atoms <= 6][:n_structures]
    cfg = RunConfig.from_dict({
        "model": {"hidden_dim": 16, "num_layers": 1, "num_freqs": 4, "time_dim": 8, "cond_mode": "total"},
        "diffusion": {"num_steps": 20},
        "training": {"batch_size": 8, "epochs": 1, "lr": 1e-3, "seed": 0},
    })
    result = train(cfg, Subset(ds, small), None, out, epochs=1, progress=False, scalers=ds.store.scalers)
    return str(result.last_checkpoint)


def gap_dos(gap_ev: float, height: float = 1.0, dos_ef: float = 0.0) -> np.ndarray:
    """(256,) a flat DOS with an empty window of ``gap_ev`` centred on E_F (and ``dos_ef`` at the two E_F bins)."""
    e = TOTAL_GRID.energies
    d = np.where(np.abs(e) > gap_ev / 2, height, 0.0)
    if dos_ef:
        d[127:129] = dos_ef
    return d


@dataclass
class FakeGeneratedDos:
    energies: np.ndarray
    dos: np.ndarray
    accepted: np.ndarray
    properties: dict = field(default_factory=dict)


def install_fake_dos_sampler(monkeypatch, calls: list) -> None:
    """Put a module ``dosmatgen.dos_sampler`` with the agreed API into sys.modules: generate_dos returns DOS with
    a gap equal to the band-gap target (every other row not accepted)."""

    class PropertyTargets:  # records what it is given (the real class validates)
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    def generate_dos(targets, n, *, checkpoint="bundled:dossampler-small", seed=0, device="cpu", guidance_scale=None, max_rounds=10,
                     shape_guidance_scale=None):
        calls.append({"targets": targets, "n": n, "checkpoint": checkpoint, "seed": seed})
        gap = targets.band_gap or 0.0
        dos = np.stack([gap_dos(gap if i % 2 == 0 else 0.0, height=0.5 + 0.01 * i) for i in range(n)])
        accepted = np.arange(n) % 2 == 0
        return FakeGeneratedDos(TOTAL_GRID.energies.copy(), dos, accepted, {})

    module = types.ModuleType("dosmatgen.dos_sampler")
    module.PropertyTargets = PropertyTargets
    module.GeneratedDos = FakeGeneratedDos
    module.generate_dos = generate_dos
    monkeypatch.setitem(sys.modules, "dosmatgen.dos_sampler", module)


class IdentityRelaxer:
    """A relaxer double: every structure 'relaxes' to itself, converged, energy -1 eV/atom, formation energy 0."""

    def __call__(self, crystals):
        from dosmatgen.screen.stages import RelaxOutcome

        return [RelaxOutcome(c, -1.0, -1.0, 0.0, steps=0, converged=True) for c in crystals]


def load_identity_relaxer() -> IdentityRelaxer:
    return IdentityRelaxer()
