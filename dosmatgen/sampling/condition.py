"""Building the DOS condition of a sampling batch: which atoms are conditioned, on what, and in which energy window."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.errors import InvalidRecordError, field_error
from dosmatgen.model.conditioning import DOSCondition


def window_mask(grid: EnergyGrid, lo: float, hi: float) -> torch.Tensor:
    """(grid.n,) float 0/1 mask of the bins with lo <= E <= hi (eV relative to E_F); error if it holds no bin."""
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        raise field_error(InvalidRecordError, f"{{window}} needs LO < HI (eV), got {lo} {hi}")
    mask = grid.window_mask(lo, hi)
    if not mask.any():
        raise field_error(InvalidRecordError, f"{{window}} {lo} {hi} eV holds no bin of the model grid [{grid.emin}, {grid.emax}] eV")
    return torch.as_tensor(mask, dtype=torch.float32)


def check_sites(sites: Sequence[int], num_atoms: Sequence[int], what: str) -> None:
    """InvalidRecordError when a site index is negative or not below every crystal's atom count."""
    smallest = int(min(num_atoms))
    for s in sites:
        if s < 0 or s >= smallest:
            raise InvalidRecordError(
                f"{what} site {s} is beyond the atom count: crystals have as few as {smallest} atoms (sites 0..{smallest - 1})"
            )


def site_condition(
    targets: torch.Tensor,
    num_atoms: torch.Tensor,
    sites: Sequence[int] | None,
    window: torch.Tensor | None = None,
) -> DOSCondition:
    """The per-atom condition of a batch where chosen sites of every crystal are conditioned on a target DOS.

    Args:
        targets: scaled target DOS, (D,) (the same for every crystal) or (B, D) (one per crystal).
        num_atoms: (B,) atoms per crystal (atoms contiguous per crystal).
        sites: local site indices conditioned in each crystal (None: every site). Others get mask 0.
        window: (D,) 0/1 energy window shared by all rows, or None (the whole spectrum).
    Returns:
        DOSCondition with ``dos`` (N, D), ``mask`` (N,), ``window`` (N, D) or None.
    """
    num_atoms = num_atoms.long()
    b = num_atoms.numel()
    targets = targets.float()
    if targets.dim() == 1:
        targets = targets.unsqueeze(0).expand(b, -1)
    if targets.shape[0] != b:
        raise ValueError(f"{targets.shape[0]} target rows for {b} crystals")
    crystal = torch.repeat_interleave(torch.arange(b), num_atoms)
    local = local_site_index(num_atoms)
    if sites is None:
        mask = torch.ones(crystal.numel())
    else:
        check_sites(sites, num_atoms.tolist(), "condition")
        mask = torch.isin(local, torch.as_tensor(list(sites), dtype=torch.long)).float()
    dos = targets[crystal].contiguous()
    win = None if window is None else window.float().unsqueeze(0).expand_as(dos).contiguous()
    return DOSCondition(dos=dos, mask=mask, window=win)


def local_site_index(num_atoms: torch.Tensor) -> torch.Tensor:
    """(N,) index of each atom inside its crystal."""
    num_atoms = num_atoms.long()
    crystal = torch.repeat_interleave(torch.arange(num_atoms.numel(), device=num_atoms.device), num_atoms)
    return torch.arange(crystal.numel(), device=num_atoms.device) - (torch.cumsum(num_atoms, 0) - num_atoms)[crystal]
