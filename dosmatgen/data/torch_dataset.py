"""A torch dataset over one split of a dataset store, for torch_geometric's ``DataLoader``.

Each item is a torch_geometric ``Data`` with the fields of :func:`dosmatgen.batch.crystal_to_data`:

* ``atom_types`` (n,) long, atomic numbers Z; ``frac_coords`` (n, 3) float32; ``lattice`` (1, 3, 3) float32, Å;
  ``num_atoms`` (1,) long
* DOS stores only: ``site_dos`` (n, 400) float32 and ``total_dos`` (1, 256) float32, standardised with the
  store's train-split scalers when ``scaled=True`` (raw states/eV per site and states/eV/atom otherwise)
* ``idx`` (1,) long, the structure's index in the store; ``y`` (1, k) float32 when ``properties`` are asked for

The whole split is read from the store once, in the constructor, and kept as tensors; ``__getitem__`` slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data

from dosmatgen.data.store import DatasetStore
from dosmatgen.errors import StoreError


class CrystalDOSDataset(Dataset):
    """Structures of one split (``"train"``, ``"val"``, ``"test"`` or ``"all"``) of a dataset store."""

    def __init__(
        self,
        store: DatasetStore | str | Path,
        split: str = "train",
        scaled: bool = True,
        properties: Sequence[str] = (),
        repeat: Mapping[str, int] | None = None,
    ):
        """``repeat``: structure id -> how many times it appears in this dataset (default once; ids outside
        ``split`` are ignored). The discovery loop uses it to weight its few new DFT records against a large store."""
        self.store = store if isinstance(store, DatasetStore) else DatasetStore.open(store)
        self.split = split
        self.scaled = scaled
        self.has_dos = self.store.has_dos
        mem = self.store.to_memory()
        self.indices = mem.split_indices(split)
        if repeat:
            position = {mem.ids[int(i)]: int(i) for i in self.indices}
            extra = [position[k] for k, n in sorted(repeat.items()) if k in position for _ in range(int(n) - 1)]
            self.indices = np.concatenate([self.indices, np.asarray(extra, dtype=self.indices.dtype)])
        atoms = mem.atom_indices(self.indices)
        counts = mem.num_atoms[self.indices].astype(np.int64)
        self._ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.ids = [mem.ids[i] for i in self.indices]
        self.site_scaler = self.total_scaler = None

        self._z = torch.as_tensor(mem.atomic_numbers[atoms].astype(np.int64))
        self._x = torch.as_tensor(mem.frac_coords[atoms], dtype=torch.float32)
        self._lattice = torch.as_tensor(mem.lattice[self.indices], dtype=torch.float32)
        self._site = self._total = self._y = None
        if self.has_dos:
            site = mem.site_dos[atoms]
            total = mem.total_dos[self.indices]
            self.site_scaler = self.store.scalers["site"]
            self.total_scaler = self.store.scalers["total"]
            if scaled:
                site = self.site_scaler.transform(site)
                total = self.total_scaler.transform(total)
            self._site = torch.as_tensor(np.asarray(site, dtype=np.float32))
            self._total = torch.as_tensor(np.asarray(total, dtype=np.float32))
        if properties:
            missing = [p for p in properties if p not in mem.properties]
            if missing:
                raise StoreError(f"{self.store.path} has no properties {missing}; it has {sorted(mem.properties)}")
            y = np.stack([mem.properties[p][self.indices] for p in properties], axis=1)
            self._y = torch.as_tensor(y, dtype=torch.float32)
        self.property_names = list(properties)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, k: int) -> Data:
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} structures")
        k = int(k) % len(self)
        a, b = int(self._ptr[k]), int(self._ptr[k + 1])
        data = Data(
            atom_types=self._z[a:b],
            frac_coords=self._x[a:b],
            lattice=self._lattice[k : k + 1],
            num_atoms=torch.tensor([b - a], dtype=torch.long),
            idx=torch.tensor([int(self.indices[k])], dtype=torch.long),
            num_nodes=b - a,
        )
        if self._site is not None:
            data.site_dos = self._site[a:b]
            data.total_dos = self._total[k : k + 1]
        if self._y is not None:
            data.y = self._y[k : k + 1]
        return data

    def __repr__(self) -> str:
        return f"CrystalDOSDataset({str(self.store.path)!r}, split={self.split!r}, n={len(self)}, scaled={self.scaled})"
