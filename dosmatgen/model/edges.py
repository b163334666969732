"""Fully connected edges within each crystal of a batch, built without Python loops over crystals."""

from __future__ import annotations

import torch


def fully_connected_edges(num_atoms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All ordered atom pairs (i, j) inside each crystal, self-pairs included.

    Args:
        num_atoms: (B,) long, atoms per crystal (atoms of crystal b are contiguous, as in a PyG batch).

    Returns:
        ``edge_index`` (2, E) long with rows (i, j) as global atom indices and ``edge_crystal`` (E,) long,
        the crystal of each edge; E = Σ_b n_b². Edges of crystal b come in row-major order of (i, j).
    """
    num_atoms = num_atoms.long()
    device = num_atoms.device
    ptr = torch.cumsum(num_atoms, 0) - num_atoms  # first atom of each crystal
    pairs = num_atoms * num_atoms
    edge_crystal = torch.repeat_interleave(torch.arange(num_atoms.numel(), device=device), pairs)
    first_edge = torch.cumsum(pairs, 0) - pairs
    local = torch.arange(edge_crystal.numel(), device=device) - first_edge[edge_crystal]
    n = num_atoms[edge_crystal]
    src = ptr[edge_crystal] + torch.div(local, n, rounding_mode="floor")
    dst = ptr[edge_crystal] + local % n
    return torch.stack([src, dst]), edge_crystal
