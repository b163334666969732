"""CHGNet's energy with its first gated-MLP layers factored over the gathered features (same weights, fewer FLOPs).

CHGNet's convolutions build, for every directed bond (atom layers) or every angle (bond and angle layers), the
concatenation of gathered atom, bond and angle features and pass it through the first ``Linear`` of a gated MLP::

    h = cat([x1[i1], x2[i2], ..., xk[ik]]) @ W.T + b

A linear map of a concatenation is the sum of the linear maps of its parts, and a gather commutes with a linear map,
so this is the same as::

    h = (x1 @ W1.T)[i1] + (x2 @ W2.T)[i2] + ... + b

where ``Wj`` is ``W``'s block of columns for part ``j``. The right side multiplies each atom's or bond's features
once, instead of once per bond or angle that gathers it: the angle layers' first matrix product shrinks from
256 to 64 input columns per angle (the angle features; the bond and atom parts are done per bond and per atom), the
atom layers' from 192 to 64 per bond. The core and gate MLPs of a gated MLP share their input, so their first
layers are one product with 128 output columns.

Everything else is CHGNet's own modules, called as CHGNet calls them (embeddings, second layers, layer norms,
activations, aggregation, readout). The result equals ``CHGNet._compute(g)["e"]`` up to float32 rounding of the
reordered sums (``tests/test_chgnet_factored.py`` compares energies, forces and stresses with CHGNet's own forward).
This module only builds the energy; forces and stress come from autograd as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FactoredGatedMLP:
    """A CHGNet ``GatedMLP`` whose fused first layer (core and gate, 2H outputs) is split by input part.

    ``blocks[j]`` is ``(H2, d_j)``: the columns of part ``j`` of the concatenated input, transposed for ``x @``.
    """

    blocks: tuple[Tensor, ...]
    bias: Tensor
    core_rest: nn.Module
    gate_rest: nn.Module
    gmlp: nn.Module
    hidden: int

    @classmethod
    def from_gated_mlp(cls, gmlp: nn.Module, part_dims: tuple[int, ...]) -> "FactoredGatedMLP":
        core_first, core_rest = _first_linear(gmlp.mlp_core)
        gate_first, gate_rest = _first_linear(gmlp.mlp_gate)
        if core_first.in_features != sum(part_dims) or gate_first.in_features != sum(part_dims):
            raise ValueError(f"gated MLP input {core_first.in_features} does not match the parts {part_dims}")
        weight = torch.cat([core_first.weight, gate_first.weight], dim=0).detach()
        zeros = weight.new_zeros(core_first.out_features)
        bias = torch.cat([
            core_first.bias.detach() if core_first.bias is not None else zeros,
            gate_first.bias.detach() if gate_first.bias is not None else weight.new_zeros(gate_first.out_features),
        ])
        blocks, start = [], 0
        for d in part_dims:
            blocks.append(weight[:, start:start + d].t().contiguous())
            start += d
        return cls(tuple(blocks), bias, core_rest, gate_rest, gmlp, core_first.out_features)

    def project(self, part: int, x: Tensor) -> Tensor:
        """``x @ W_part.T``: part ``part``'s share of the fused first layer, per row of ``x`` (before any gather)."""
        return x @ self.blocks[part]

    def finish(self, h: Tensor) -> Tensor:
        """The gated MLP from its fused first-layer output ``h`` (rows, 2H) on: CHGNet's ``GatedMLP.forward``."""
        g = self.gmlp
        core, gate = torch.split(h, self.hidden, dim=1)  # backward: one cat, not two zero-filled copies
        core, gate = self.core_rest(core), self.gate_rest(gate)
        if g.norm is not None:
            core, gate = g.bn1(core), g.bn2(gate)
        return g.activation(core) * g.sigmoid(gate)


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``x[index]`` (``index_select``: several times faster on CPU than advanced indexing, also backwards)."""
    return torch.index_select(x, 0, index)


def _first_linear(mlp: nn.Module) -> tuple[nn.Linear, nn.Module]:
    """The first ``Linear`` of a CHGNet ``MLP`` and the layers after it (only dropouts may come before it)."""
    layers = list(mlp.layers)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            if any(not isinstance(prev, nn.Dropout) for prev in layers[:i]):
                raise ValueError(f"unexpected layers before the first Linear of {mlp}")
            return layer, nn.Sequential(*layers[i + 1:])
    raise ValueError(f"no Linear layer in {mlp}")


class FactoredCHGNet:
    """Energy of a CHGNet ``BatchedGraph`` with the factored first layers; see the module docstring.

    Built once per model (the split weights are copies; the model must not be trained afterwards).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        a = model.atom_embedding.embedding.embedding_dim
        b = model.bond_embedding.out_features
        c = model.angle_embedding.out_features
        self.atom = [FactoredGatedMLP.from_gated_mlp(layer.twoBody_atom, (a, b, a)) for layer in model.atom_conv_layers]
        self.bond = [None if layer is None else FactoredGatedMLP.from_gated_mlp(layer.twoBody_bond, (b, b, c, a))
                     for layer in model.bond_conv_layers]
        self.angle = [None if layer is None else FactoredGatedMLP.from_gated_mlp(layer.twoBody_bond, (b, b, c, a))
                      for layer in model.angle_layers]

    # ----------------------------------------------------------------- layers
    def _atom_conv(self, k: int, atom_feas: Tensor, bond_feas: Tensor, bond_weights: Tensor, g) -> Tensor:
        layer, f = self.model.atom_conv_layers[k], self.atom[k]
        center, nbr = g.batched_atom_graph[:, 0], g.batched_atom_graph[:, 1]
        d2u = g.directed2undirected
        h = _gather(f.project(0, atom_feas), center)
        h += _gather(f.project(1, bond_feas) + f.bias, d2u)
        h += _gather(f.project(2, atom_feas), nbr)
        messages = f.finish(h) * _gather(bond_weights, d2u)
        new = messages.new_zeros(atom_feas.shape[0], messages.shape[1]).index_add_(0, center, messages)
        if layer.use_mlp_out:
            new = layer.mlp_out(new)
        if layer.resnet:
            new = new + atom_feas
        if layer.atom_norm is not None:
            new = layer.atom_norm(new)
        return new

    @staticmethod
    def _angle_input(f: FactoredGatedMLP, atom_feas: Tensor, bond_feas: Tensor, angle_feas: Tensor, bg: Tensor) -> Tensor:
        """The fused first layer over [bond_i, bond_j, angle, center atom] per angle."""
        h = torch.addmm(f.bias, angle_feas, f.blocks[2])
        h += _gather(f.project(0, bond_feas), bg[:, 1])
        h += _gather(f.project(1, bond_feas), bg[:, 2])
        h += _gather(f.project(3, atom_feas), bg[:, 0])
        return h

    def _bond_conv(self, k: int, atom_feas: Tensor, bond_feas: Tensor, bond_weights: Tensor, angle_feas: Tensor, bg: Tensor) -> Tensor:
        layer, f = self.model.bond_conv_layers[k], self.bond[k]
        update = f.finish(self._angle_input(f, atom_feas, bond_feas, angle_feas, bg))
        update = update * _gather(bond_weights, bg[:, 1]) * _gather(bond_weights, bg[:, 2])
        new = update.new_zeros(bond_feas.shape[0], update.shape[1]).index_add_(0, bg[:, 1], update)
        if layer.use_mlp_out:
            new = layer.mlp_out(new)
        if layer.resnet:
            new = new + bond_feas
        if layer.bond_norm is not None:
            new = layer.bond_norm(new)
        return new

    def _angle_update(self, k: int, atom_feas: Tensor, bond_feas: Tensor, angle_feas: Tensor, bg: Tensor) -> Tensor:
        layer, f = self.model.angle_layers[k], self.angle[k]
        new = f.finish(self._angle_input(f, atom_feas, bond_feas, angle_feas, bg))
        if layer.resnet:
            new = new + angle_feas
        if layer.angle_norm is not None:
            new = layer.angle_norm(new)
        return new

    # ---------------------------------------------------------------- forward
    def compute(self, g) -> dict:
        """``{"e": energy per structure (per atom if the model is intensive), "atoms_per_graph": counts}``, as
        ``CHGNet._compute(g)`` without forces, stress or magnetic moments."""
        m = self.model
        atoms_per_graph = torch.bincount(g.atom_owners)
        atom_feas = m.atom_embedding(g.atomic_numbers - 1)
        bond_feas = m.bond_embedding(g.bond_bases_ag)
        bond_weights_ag = m.bond_weights_ag(g.bond_bases_ag)
        bond_weights_bg = m.bond_weights_bg(g.bond_bases_bg)
        has_angles = len(g.angle_bases) != 0
        angle_feas = m.angle_embedding(g.angle_bases) if has_angles else None
        bg = g.batched_bond_graph.long() if has_angles else None
        n_layers = len(m.atom_conv_layers)
        # CHGNet zips the atom layers but the last with the bond and angle layers: the shortest list sets the count
        for k in range(min(n_layers - 1, len(self.bond), len(self.angle))):
            atom_feas = self._atom_conv(k, atom_feas, bond_feas, bond_weights_ag, g)
            if has_angles and self.bond[k] is not None:
                bond_feas = self._bond_conv(k, atom_feas, bond_feas, bond_weights_bg, angle_feas, bg)
                if self.angle[k] is not None:
                    angle_feas = self._angle_update(k, atom_feas, bond_feas, angle_feas, bg)
        atom_feas = self._atom_conv(n_layers - 1, atom_feas, bond_feas, bond_weights_ag, g)
        if m.readout_norm is not None:
            atom_feas = m.readout_norm(atom_feas)
        if m.mlp_first:
            energy = m.pooling(m.mlp(atom_feas), g.atom_owners).view(-1)
        else:
            energy = m.mlp(m.pooling(atom_feas, g.atom_owners)).view(-1) * atoms_per_graph
        if m.is_intensive:
            energy = energy / atoms_per_graph
        return {"e": energy, "atoms_per_graph": atoms_per_graph}
