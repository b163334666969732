"""Constraints applied to the state after every step of the sampler (and to the starting state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from dosmatgen.diffusion.state import CrystalState
from dosmatgen.elements import MAX_Z, atomic_number
from dosmatgen.errors import InvalidRecordError, field_error
from dosmatgen.sampling.condition import check_sites, local_site_index


class Constraint(Protocol):
    def apply(self, state: CrystalState) -> CrystalState:
        """Return the state with the constraint enforced."""


@dataclass(frozen=True)
class FixedTypes:
    """Chosen sites of EVERY crystal keep a fixed element: their type vector is overwritten with a clean one-hot
    at the start and after every step (so the argmax is the fixed element at every step).

    ``sites`` are local site indices (0-based) and ``atomic_numbers`` the matching Z (1..num_classes).
    """

    sites: tuple[int, ...]
    atomic_numbers: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.sites) != len(self.atomic_numbers):
            raise ValueError("one atomic number per fixed site")
        if len(set(self.sites)) != len(self.sites):
            raise InvalidRecordError(f"a site is fixed twice in {list(self.sites)}")

    @classmethod
    def parse(cls, specs: Sequence[str], num_classes: int = MAX_Z) -> "FixedTypes":
        """``["0:Ni", "2:O"]`` -> FixedTypes; errors for bad syntax and elements outside the vocabulary."""
        sites, zs = [], []
        for spec in specs:
            site_s, sep, element = str(spec).partition(":")
            if not sep or not site_s.strip().lstrip("-").isdigit() or not element.strip():
                raise field_error(InvalidRecordError, f"{{fix_types}} {spec!r}: expected SITE:ELEMENT, e.g. 0:Ni")
            z = atomic_number(element.strip())
            if not 1 <= z <= num_classes:
                raise field_error(
                    InvalidRecordError, f"{{fix_types}} {spec!r}: element {element.strip()} (Z={z}) is outside the model's vocabulary of Z 1..{num_classes}"
                )
            sites.append(int(site_s))
            zs.append(z)
        return cls(tuple(sites), tuple(zs))

    def check(self, num_atoms: Sequence[int]) -> None:
        check_sites(self.sites, num_atoms, "fixed-type")

    def atom_mask_and_types(self, state: CrystalState) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) bool: atoms that are fixed; (N,) long: their class index (Z − 1; 0 where not fixed)."""
        local = local_site_index(state.num_atoms)
        fixed = torch.zeros_like(local, dtype=torch.bool)
        cls = torch.zeros_like(local)
        for site, z in zip(self.sites, self.atomic_numbers):
            hit = local == site
            fixed |= hit
            cls = torch.where(hit, torch.full_like(cls, z - 1), cls)
        return fixed, cls

    def apply(self, state: CrystalState) -> CrystalState:
        if not self.sites:
            return state
        fixed, cls = self.atom_mask_and_types(state)
        one_hot = torch.nn.functional.one_hot(cls, state.atom_types.shape[-1]).to(state.atom_types.dtype)
        return state.replace(atom_types=torch.where(fixed.unsqueeze(-1), one_hot, state.atom_types))


def apply_all(constraints: Sequence[Constraint], state: CrystalState) -> CrystalState:
    for c in constraints:
        state = c.apply(state)
    return state
