"""The CSPNet message-passing stack shared by the denoiser, the guidance regressor and the DOS surrogate.

Each model keeps its own attribute names (``fourier``, ``layers``, ``final_norm``), which are the keys of the
shipped checkpoints; these two functions are what the three have in common: building the layers and running them
on a batch of crystals over fully connected edges with ``flatten(L Lᵀ)`` and periodic Fourier features.
"""

from __future__ import annotations

import torch
from torch import nn

from dosmatgen.model.edges import fully_connected_edges, size_groups
from dosmatgen.model.embeddings import FractionalFourierFeatures
from dosmatgen.model.layers import CSPLayer


def csp_layers(hidden_dim: int, fourier: FractionalFourierFeatures, num_layers: int, layer_norm: bool) -> nn.ModuleList:
    """``num_layers`` CSP layers of width ``hidden_dim`` taking ``fourier``'s edge features."""
    return nn.ModuleList([CSPLayer(hidden_dim, fourier.out_dim, layer_norm) for _ in range(num_layers)])


def run_csp_layers(
    layers: nn.ModuleList,
    fourier: FractionalFourierFeatures,
    h: torch.Tensor,
    frac_coords: torch.Tensor,
    lattice: torch.Tensor,
    num_atoms: torch.Tensor,
    grouped: bool = True,
) -> torch.Tensor:
    """Message passing over every ordered atom pair of each crystal.

    Args:
        h: (N, H) node features; frac_coords: (N, 3); lattice: (B, 3, 3) rows in Å; num_atoms: (B,) long.
        grouped: evaluate the layers on dense per-size groups (:meth:`CSPLayer.forward_grouped`, the default and
            faster) instead of the edge list (:meth:`CSPLayer.forward`); the results agree to float32 rounding.
    Returns:
        (N, H) node features after every layer (before any final norm).
    """
    if grouped:
        groups = size_groups(num_atoms)
        lattice_ip = (lattice @ lattice.transpose(-1, -2)).reshape(lattice.shape[0], 9)
        features = []
        for g in groups:
            x = frac_coords[g.atoms]  # (B_n, n, 3)
            half = x.shape[0] // 2
            if x.shape[0] % 2 == 0 and torch.equal(x[:half], x[half:]):
                x = x[:half]  # a CFG batch (the crystals twice): the geometry features of one copy serve both
            d = x.unsqueeze(1) - x.unsqueeze(2)  # [b, i, j] = x_j - x_i
            features.append(fourier(d.reshape(-1, 3)).reshape(*d.shape[:3], -1))
        for layer in layers:
            h = layer.forward_grouped(h, groups, lattice_ip, features)
        return h
    edge_index, edge_crystal = fully_connected_edges(num_atoms)
    lattice_ip = (lattice @ lattice.transpose(-1, -2)).reshape(lattice.shape[0], 9)
    src, dst = edge_index
    edge_features = fourier(frac_coords[dst] - frac_coords[src])
    for layer in layers:
        h = layer(h, edge_index, edge_crystal, lattice_ip, edge_features)
    return h
