"""Torch batches of crystals on torch_geometric's ``Data``/``Batch``.

One ``Data`` per crystal with

* ``atom_types``  (n,) long, atomic numbers Z (1..100)
* ``frac_coords`` (n, 3) float
* ``lattice``     (1, 3, 3) float (so that batching stacks to (B, 3, 3))
* ``num_atoms``   (1,) long
* optional per-atom tensors passed as ``node_fields`` (e.g. ``site_dos`` (n, 400), ``dos_mask`` (n,))
* optional per-crystal tensors passed as ``graph_fields`` (e.g. ``total_dos`` (1, 256))

``Batch.from_data_list`` provides ``batch`` (atom -> crystal index) and ``ptr`` (offsets).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from dosmatgen.crystal import Crystal


def crystal_to_data(
    crystal: Crystal,
    node_fields: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    graph_fields: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Data:
    n = crystal.num_atoms
    data = Data(
        atom_types=torch.tensor(crystal.atomic_numbers, dtype=torch.long),  # copies: crystal arrays may be read-only
        frac_coords=torch.tensor(crystal.frac_coords, dtype=dtype),
        lattice=torch.tensor(crystal.lattice, dtype=dtype).unsqueeze(0),
        num_atoms=torch.tensor([n], dtype=torch.long),
        num_nodes=n,
    )
    for key, value in (node_fields or {}).items():
        t = torch.as_tensor(value)
        if t.shape[0] != n:
            raise ValueError(f"node field {key!r} has {t.shape[0]} rows for a crystal of {n} atoms")
        data[key] = t
    for key, value in (graph_fields or {}).items():
        data[key] = torch.as_tensor(value).unsqueeze(0)
    return data


def collate_crystals(
    crystals: Sequence[Crystal],
    node_fields: Sequence[Mapping[str, np.ndarray | torch.Tensor]] | None = None,
    graph_fields: Sequence[Mapping[str, np.ndarray | torch.Tensor]] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Batch:
    """Batch crystals (and matching per-crystal extra fields) into one torch_geometric ``Batch``."""
    if len(crystals) == 0:
        raise ValueError("cannot batch zero crystals")
    nf = node_fields or [None] * len(crystals)
    gf = graph_fields or [None] * len(crystals)
    return Batch.from_data_list([crystal_to_data(c, n, g, dtype) for c, n, g in zip(crystals, nf, gf)])


def batch_to_crystals(batch: Batch) -> list[Crystal]:
    """Split a batch back into crystals (coordinates are wrapped into [0, 1))."""
    ptr = batch.ptr.cpu().numpy()
    z = batch.atom_types.detach().cpu().numpy()
    x = batch.frac_coords.detach().cpu().double().numpy()
    lat = batch.lattice.detach().cpu().double().numpy()
    return [Crystal(z[ptr[i] : ptr[i + 1]], x[ptr[i] : ptr[i + 1]], lat[i]) for i in range(len(ptr) - 1)]
