"""The state of a batch of crystals during diffusion, and matching standard-normal noise."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class CrystalState:
    """A (possibly noisy) batch of B crystals with N atoms in all.

    * ``atom_types`` (N, C) float: continuous one-hot over C = 100 classes (class = Z - 1).
    * ``frac_coords`` (N, 3) float in [0, 1).
    * ``lattice`` (B, 3, 3) float, rows are lattice vectors (Å).
    * ``batch`` (N,) long: crystal index of each atom (atoms of a crystal contiguous, crystals in order).
    * ``num_atoms`` (B,) long.
    """

    atom_types: torch.Tensor
    frac_coords: torch.Tensor
    lattice: torch.Tensor
    batch: torch.Tensor
    num_atoms: torch.Tensor

    @property
    def num_crystals(self) -> int:
        return int(self.lattice.shape[0])

    def replace(self, **changes: torch.Tensor) -> "CrystalState":
        return replace(self, **changes)

    def to(self, device: torch.device | str) -> "CrystalState":
        return CrystalState(*(getattr(self, f).to(device) for f in ("atom_types", "frac_coords", "lattice", "batch", "num_atoms")))


@dataclass(frozen=True)
class StateNoise:
    """Standard-normal draws with the shapes of a :class:`CrystalState`: atom_types (N, C), frac_coords (N, 3),
    lattice (B, 3, 3)."""

    atom_types: torch.Tensor
    frac_coords: torch.Tensor
    lattice: torch.Tensor

    @classmethod
    def randn_like(cls, state: CrystalState, generator: torch.Generator | None = None) -> "StateNoise":
        def draw(ref: torch.Tensor) -> torch.Tensor:
            return torch.randn(ref.shape, generator=generator, dtype=ref.dtype, device=ref.device)

        return cls(draw(state.atom_types), draw(state.frac_coords), draw(state.lattice))

    @classmethod
    def zeros_like(cls, state: CrystalState) -> "StateNoise":
        return cls(torch.zeros_like(state.atom_types), torch.zeros_like(state.frac_coords), torch.zeros_like(state.lattice))
