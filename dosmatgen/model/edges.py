"""Fully connected edges within each crystal of a batch, built without Python loops over crystals, and the same
edges as dense per-size groups."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class SizeGroup:
    """The crystals of a batch that have the same atom count n, as dense index tables.

    ``crystals`` (B_n,) their crystal indices; ``atoms`` (B_n, n) the global index of atom i of each. The fully
    connected edges of the group are the (B_n, n, n) grid [b, i, j] = (atoms[b, i], atoms[b, j]).
    """

    crystals: torch.Tensor
    atoms: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.atoms.shape[1])


def size_groups(num_atoms: torch.Tensor) -> list[SizeGroup]:
    """The crystals of a batch grouped by atom count (ascending n), one :class:`SizeGroup` per distinct count."""
    num_atoms = num_atoms.long()
    ptr = torch.cumsum(num_atoms, 0) - num_atoms
    groups = []
    for n in torch.unique(num_atoms).tolist():
        crystals = torch.nonzero(num_atoms == n).flatten()
        atoms = ptr[crystals].unsqueeze(-1) + torch.arange(int(n), device=num_atoms.device)
        groups.append(SizeGroup(crystals, atoms))
    return groups
