"""The structures of a split that are reconstructed, with the site DOS that conditions each one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.store import DatasetStore
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import StoreError


@dataclass
class ConditioningSet:
    """Structures of ``split`` picked for the protocol, in store order.

    * ``indices``: (M,) store indices; ``ids``: their structure ids; ``crystals``: the ground-truth structures;
    * ``site_dos``: one (n_atoms_i, 400) array per structure, **unscaled** site DOS (states/eV) on ``SITE_GRID``;
      every site conditions the generation (the paper's reconstruction protocol);
    * ``n_available``: structures in the split before ``limit`` was applied.
    """

    split: str
    indices: np.ndarray
    ids: list[str]
    crystals: list[Crystal]
    site_dos: list[np.ndarray]
    n_available: int

    def __len__(self) -> int:
        return len(self.crystals)

    @property
    def num_atoms(self) -> np.ndarray:
        return np.array([c.num_atoms for c in self.crystals], dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        n = self.num_atoms
        return {
            "split": self.split, "n_available": int(self.n_available), "n_selected": len(self),
            "n_sites": int(n.sum()), "num_atoms_min": int(n.min()), "num_atoms_max": int(n.max()),
            "num_atoms_mean": float(n.mean()), "ids": list(self.ids),
        }


def select_structures(n_available: int, limit: int | None, seed: int) -> np.ndarray:
    """Positions (sorted) of ``min(limit, n_available)`` of ``n_available`` items: all of them without a limit,
    else a seeded uniform random subset (the same for the same seed)."""
    if limit is None or limit >= n_available:
        return np.arange(n_available)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E1EC7]))
    return np.sort(rng.choice(n_available, size=int(limit), replace=False))


def load_conditioning_set(store: DatasetStore, split: str, limit: int | None = None, seed: int = 0) -> ConditioningSet:
    """The (limited) structures of ``split`` with their unscaled site DOS; StoreError when the store cannot serve it."""
    if not store.has_dos:
        raise StoreError(f"{store.path} holds structures only; the reconstruction protocol needs site DOS")
    if store.site_grid.n != SITE_GRID.n or not np.allclose(store.site_grid.energies, SITE_GRID.energies):
        raise StoreError(f"{store.path}: site DOS grid {store.site_grid.n} points on [{store.site_grid.emin}, {store.site_grid.emax}] eV "
                         f"is not the model grid (SITE_GRID, {SITE_GRID.n} points)")
    try:
        in_split = store.split_indices(split)
    except ValueError as exc:
        raise StoreError(f"{store.path}: {exc}") from None
    if in_split.size == 0:
        raise StoreError(f"{store.path}: split {split!r} is empty")
    picked = in_split[select_structures(in_split.size, limit, seed)]
    crystals = [store.crystal(int(i)) for i in picked]
    dos = [store.site_features(int(i), scaled=False).astype(np.float64) for i in picked]
    return ConditioningSet(split, picked, [store.ids[int(i)] for i in picked], crystals, dos, int(in_split.size))


def split_crystals(store: DatasetStore, split: str) -> list[Crystal]:
    """Every structure of ``split`` (e.g. the training set, the reference for novelty)."""
    try:
        idx = store.split_indices(split)
    except ValueError as exc:
        raise StoreError(f"{store.path}: {exc}") from None
    return [store.crystal(int(i)) for i in idx]
