"""CHGNet's energy with its first gated-MLP layers factored over the gathered features (same weights, fewer FLOPs).

CHGNet's convolutions build, for every directed bond (atom layers) or every angle (bond and angle layers), the
concatenation of gathered atom, bond and angle features and pass it through the first ``Linear`` of a gated MLP::

    h = cat([x1[i1], x2[i2], ..., xk[ik]]) @ W.T + b

A linear map of a concatenation is the sum of the linear maps of its parts, and a gather commutes with a linear map,
so this is the same as::

    h = (x1 @ W1.T)[i1] + (x2 @ W2.T)[i2] + ... + b

where ``Wj`` is ``W``'s block of columns for part ``j``. The right side multiplies each atom's or bond's features
once, instead of once per bond or angle that gathers it: per angle, the bond and angle layers' first matrix
product shrinks from 256 input columns to 64 (the angle features; the bond and atom parts are multiplied per bond and
per atom); the atom layers do no first-layer product per directed bond at all (64 input columns per undirected bond
and 2 x 64 per atom instead of 192 per directed bond). The core and gate MLPs of a gated MLP share their input, so
their first layers are one product with 2H output columns.

The embeddings, second layers, layer norms, activations and readout are CHGNet's own modules, called as CHGNet calls
them; the gated MLP's combination of core and gate and the sum aggregation are written out here, as CHGNet does them. The result equals ``CHGNet._compute(g)["e"]`` up to float32 rounding of the
reordered sums (``tests/test_chgnet_factored.py`` compares energies, forces and stresses with CHGNet's own forward).
This module only builds the energy; forces and stress come from autograd as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


class FactoredGatedMLP:
    """A CHGNet ``GatedMLP`` whose fused first layer (core and gate, 2H outputs) is split by input part.

    The blocks are views of the module's live weights, taken at each :meth:`fuse` (one small copy per layer and
    call), so a model that is reloaded, fine-tuned or moved afterwards is never evaluated with stale weights.
    """

    def __init__(self, gmlp: nn.Module, part_dims: tuple[int, ...]) -> None:
        self.core_first, self.core_rest = _first_linear(gmlp.mlp_core)
        self.gate_first, self.gate_rest = _first_linear(gmlp.mlp_gate)
        if self.core_first.in_features != sum(part_dims) or self.gate_first.in_features != sum(part_dims):
            raise ValueError(f"gated MLP input {self.core_first.in_features} does not match the parts {part_dims}")
        self.gmlp = gmlp
        self.part_dims = part_dims
        self.hidden = self.core_first.out_features

    def fuse(self) -> tuple[list[Tensor], Tensor]:
        """``(blocks, bias)``: ``blocks[j]`` (d_j, 2H) multiplies part ``j`` of the concatenated input (``x @ block``);
        ``bias`` (2H,) is the core's and the gate's bias (zero where a layer has none)."""
        core, gate = self.core_first, self.gate_first
        weight = torch.cat([core.weight, gate.weight], dim=0)
        bias = torch.cat([b if b is not None else weight.new_zeros(n)
                          for b, n in ((core.bias, core.out_features), (gate.bias, gate.out_features))])
        blocks, start = [], 0
        for d in self.part_dims:
            blocks.append(weight[:, start:start + d].t())
            start += d
        return blocks, bias

    def finish(self, h: Tensor) -> Tensor:
        """The gated MLP from its fused first-layer output ``h`` (rows, 2H) on: CHGNet's ``GatedMLP.forward``."""
        g = self.gmlp
        core, gate = torch.split(h, self.hidden, dim=1)  # backward: one cat, not two zero-filled copies
        core, gate = self.core_rest(core), self.gate_rest(gate)
        if g.norm is not None:
            core, gate = g.bn1(core), g.bn2(gate)
        return g.activation(core) * g.sigmoid(gate)


@dataclass(frozen=True)
class _GraphIndex:
    """The batched graph's index columns, each contiguous int64 once per call (CHGNet keeps int32 column views;
    ``index_select`` and ``index_add_`` with those are measurably slower on CPU)."""

    center: Tensor
    neighbor: Tensor
    directed2undirected: Tensor
    angle_center: Tensor | None
    bond_i: Tensor | None
    bond_j: Tensor | None

    @classmethod
    def of(cls, g, has_angles: bool) -> "_GraphIndex":
        def col(t: Tensor, j: int) -> Tensor:
            return t[:, j].to(torch.int64).contiguous()

        ag, bg = g.batched_atom_graph, g.batched_bond_graph
        return cls(col(ag, 0), col(ag, 1), g.directed2undirected.to(torch.int64).contiguous(),
                   col(bg, 0) if has_angles else None, col(bg, 1) if has_angles else None,
                   col(bg, 2) if has_angles else None)


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """Rows ``x[index]`` (``index_select``: several times faster on CPU than advanced indexing, also backwards)."""
    return torch.index_select(x, 0, index)


def _sum_into(rows: Tensor, owner: Tensor, n_owners: int) -> Tensor:
    """Sum of ``rows`` per owner, (n_owners, F): CHGNet's ``aggregate(..., average=False)``."""
    return rows.new_zeros(n_owners, rows.shape[1]).index_add_(0, owner, rows)


def _layer_output(layer: nn.Module, new: Tensor, old: Tensor, norm: nn.Module | None) -> Tensor:
    """The end of a CHGNet conv layer: its output MLP (atom and bond layers), residual and normalisation."""
    if getattr(layer, "use_mlp_out", False):
        new = layer.mlp_out(new)
    if layer.resnet:
        new = new + old
    return norm(new) if norm is not None else new


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

    Inference only: :meth:`compute` refuses a model in training mode (CHGNet's dropout draws separate masks for the
    core and the gate, which cannot be factored). The weights are read from the model at every call.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        a = model.atom_embedding.embedding.embedding_dim
        b = model.bond_embedding.out_features
        c = model.angle_embedding.out_features
        self.atom = [FactoredGatedMLP(layer.twoBody_atom, (a, b, a)) for layer in model.atom_conv_layers]
        self.bond = [None if layer is None else FactoredGatedMLP(layer.twoBody_bond, (b, b, c, a))
                     for layer in model.bond_conv_layers]
        self.angle = [None if layer is None else FactoredGatedMLP(layer.twoBody_bond, (b, b, c, a))
                      for layer in model.angle_layers]

    # ----------------------------------------------------------------- layers
    def _atom_conv(self, k: int, atom_feas: Tensor, bond_feas: Tensor, bond_weights: Tensor, ix: "_GraphIndex") -> Tensor:
        layer, f = self.model.atom_conv_layers[k], self.atom[k]
        blocks, bias = f.fuse()
        center, nbr, d2u = ix.center, ix.neighbor, ix.directed2undirected
        h = _gather(atom_feas @ blocks[0], center)
        h += _gather(torch.addmm(bias, bond_feas, blocks[1]), d2u)
        h += _gather(atom_feas @ blocks[2], nbr)
        messages = f.finish(h) * _gather(bond_weights, d2u)
        return _layer_output(layer, _sum_into(messages, center, atom_feas.shape[0]), atom_feas, layer.atom_norm)

    @staticmethod
    def _angle_input(f: FactoredGatedMLP, atom_feas: Tensor, bond_feas: Tensor, angle_feas: Tensor, ix: "_GraphIndex") -> Tensor:
        """The fused first layer over [bond_i, bond_j, angle, center atom] per angle."""
        blocks, bias = f.fuse()
        h = torch.addmm(bias, angle_feas, blocks[2])
        h += _gather(bond_feas @ blocks[0], ix.bond_i)
        h += _gather(bond_feas @ blocks[1], ix.bond_j)
        h += _gather(atom_feas @ blocks[3], ix.angle_center)
        return h

    def _bond_conv(self, k: int, atom_feas: Tensor, bond_feas: Tensor, bond_weights: Tensor, angle_feas: Tensor,
                   ix: "_GraphIndex") -> Tensor:
        layer, f = self.model.bond_conv_layers[k], self.bond[k]
        update = f.finish(self._angle_input(f, atom_feas, bond_feas, angle_feas, ix))
        update = update * _gather(bond_weights, ix.bond_i) * _gather(bond_weights, ix.bond_j)
        return _layer_output(layer, _sum_into(update, ix.bond_i, bond_feas.shape[0]), bond_feas, layer.bond_norm)

    def _angle_update(self, k: int, atom_feas: Tensor, bond_feas: Tensor, angle_feas: Tensor, ix: "_GraphIndex") -> Tensor:
        layer, f = self.model.angle_layers[k], self.angle[k]
        return _layer_output(layer, f.finish(self._angle_input(f, atom_feas, bond_feas, angle_feas, ix)), angle_feas,
                             layer.angle_norm)

    # ---------------------------------------------------------------- forward
    def compute(self, g) -> dict:
        """``{"e": energy per structure (per atom if the model is intensive), "atoms_per_graph": counts}``, as
        ``CHGNet._compute(g)`` without forces, stress or magnetic moments."""
        m = self.model
        if m.training:
            raise RuntimeError("the factored CHGNet forward is for inference; call model.eval() first")
        atoms_per_graph = torch.bincount(g.atom_owners)
        atom_feas = m.atom_embedding(g.atomic_numbers - 1)
        bond_feas = m.bond_embedding(g.bond_bases_ag)
        bond_weights_ag = m.bond_weights_ag(g.bond_bases_ag)
        bond_weights_bg = m.bond_weights_bg(g.bond_bases_bg)
        has_angles = len(g.angle_bases) != 0
        angle_feas = m.angle_embedding(g.angle_bases) if has_angles else None
        ix = _GraphIndex.of(g, has_angles)
        n_layers = len(m.atom_conv_layers)
        # CHGNet zips the atom layers but the last with the bond and angle layers: the shortest list sets the count
        for k in range(min(n_layers - 1, len(self.bond), len(self.angle))):
            atom_feas = self._atom_conv(k, atom_feas, bond_feas, bond_weights_ag, ix)
            if has_angles and self.bond[k] is not None:
                bond_feas = self._bond_conv(k, atom_feas, bond_feas, bond_weights_bg, angle_feas, ix)
                if self.angle[k] is not None:
                    angle_feas = self._angle_update(k, atom_feas, bond_feas, angle_feas, ix)
        atom_feas = self._atom_conv(n_layers - 1, atom_feas, bond_feas, bond_weights_ag, ix)
        if m.readout_norm is not None:
            atom_feas = m.readout_norm(atom_feas)
        if m.mlp_first:
            energy = m.pooling(m.mlp(atom_feas), g.atom_owners).view(-1)
        else:
            energy = m.mlp(m.pooling(atom_feas, g.atom_owners)).view(-1) * atoms_per_graph
        if m.is_intensive:
            energy = energy / atoms_per_graph
        return {"e": energy, "atoms_per_graph": atoms_per_graph}
