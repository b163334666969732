"""Optional recording of the sampler's states, one frame per reverse step."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dosmatgen.diffusion.state import CrystalState


@dataclass
class Trajectory:
    """Frames of the reverse process. ``steps[k]`` is the step t of frame k (the state S_t); the first frame is the
    starting state (after constraints), the last one S_0. Tensors are detached CPU copies:
    ``atom_types`` (N, C), ``frac_coords`` (N, 3), ``lattice`` (B, 3, 3)."""

    steps: list[int] = field(default_factory=list)
    atom_types: list[torch.Tensor] = field(default_factory=list)
    frac_coords: list[torch.Tensor] = field(default_factory=list)
    lattice: list[torch.Tensor] = field(default_factory=list)

    def record(self, t: int, state: CrystalState) -> None:
        self.steps.append(int(t))
        self.atom_types.append(state.atom_types.detach().cpu().clone())
        self.frac_coords.append(state.frac_coords.detach().cpu().clone())
        self.lattice.append(state.lattice.detach().cpu().clone())

    def __len__(self) -> int:
        return len(self.steps)

    def atomic_numbers(self, k: int) -> torch.Tensor:
        """(N,) Z = argmax + 1 of frame k."""
        return self.atom_types[k].argmax(-1) + 1
