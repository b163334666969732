"""Per-structure randomness for a training step: the draws of each crystal depend only on (seed, epoch, key).

By default a training step draws its diffusion time t, its noise and its condition dropout from ONE generator
for the whole batch, so the numbers a crystal gets depend on where it sits in the batch and on which worker
holds it. With ``training.per_structure_noise: true`` every crystal draws them from its own generator, seeded
from (training seed, epoch, the crystal's ``idx`` in the dataset store). Then a data-parallel run on N workers,
each taking its share of a global batch, draws exactly what a single process taking the whole batch draws, and
the two runs agree to floating-point round-off (test: ``tests/test_cluster_ray_train.py``). The cost is one
small generator per crystal per step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.diffusion.state import StateNoise
from dosmatgen.training.condition_dropout import DropoutDraws


@dataclass(frozen=True)
class StepDraws:
    """Everything random in one training step: t (B,), the diffusion noise and the condition-dropout uniforms."""

    t: torch.Tensor
    noise: StateNoise
    dropout: DropoutDraws


def structure_seed(seed: int, epoch: int, key: int) -> int:
    """A 63-bit generator seed from (seed, epoch, key), well mixed (sha256)."""
    digest = hashlib.sha256(f"{int(seed)}:{int(epoch)}:{int(key)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batch_keys(batch) -> torch.Tensor:
    """The (B,) dataset indices of a batch's crystals (``idx``, set by ``CrystalDOSDataset``)."""
    idx = getattr(batch, "idx", None)
    if idx is None:
        raise ValueError("per_structure_noise needs the crystals' dataset index: the batch has no 'idx' field")
    idx = idx.reshape(-1)
    if idx.numel() != int(batch.num_atoms.numel()):
        raise ValueError(f"the batch has {idx.numel()} idx values for {int(batch.num_atoms.numel())} crystals")
    return idx


def keyed_step_draws(diffusion: JointDiffusion, batch, seed: int, epoch: int) -> StepDraws:
    """Draw t, noise and dropout uniforms crystal by crystal, each from a generator keyed on its ``idx``.

    Within one crystal the order of the draws is fixed: t, lattice noise (3, 3), type noise (n, C), coordinate
    noise (n, 3), dropout decisions (3), site-keep probability (1), site draws (n), window uniforms (2).
    """
    clean = diffusion.clean_state(batch)
    keys = batch_keys(batch).tolist()
    counts = clean.num_atoms.tolist()
    num_classes = clean.atom_types.shape[1]
    dtype, device = clean.frac_coords.dtype, clean.frac_coords.device
    ts, lattice, types, coords, crystal_u, keep_prob, site_u, window_u = [], [], [], [], [], [], [], []
    for key, n in zip(keys, counts):
        g = torch.Generator().manual_seed(structure_seed(seed, epoch, key))
        ts.append(torch.randint(1, diffusion.num_steps + 1, (1,), generator=g))
        lattice.append(torch.randn(3, 3, generator=g, dtype=dtype))
        types.append(torch.randn(n, num_classes, generator=g, dtype=dtype))
        coords.append(torch.randn(n, 3, generator=g, dtype=dtype))
        crystal_u.append(torch.rand(1, 3, generator=g))
        keep_prob.append(torch.rand(1, generator=g))
        site_u.append(torch.rand(n, generator=g))
        window_u.append(torch.rand(1, 2, generator=g, dtype=torch.float64))
    noise = StateNoise(
        atom_types=torch.cat(types).to(device),
        frac_coords=torch.cat(coords).to(device),
        lattice=torch.stack(lattice).to(device),
    )
    dropout = DropoutDraws(
        crystal=torch.cat(crystal_u).to(device),
        keep_prob=torch.cat(keep_prob).to(device),
        site=torch.cat(site_u).to(device),
        window=torch.cat(window_u).to(device),
    )
    return StepDraws(t=torch.cat(ts).to(device), noise=noise, dropout=dropout)
