"""The one crystal data model used end to end: (A, X, L).

* ``A`` atomic numbers, shape (n,), int64, 1..100
* ``X`` fractional coordinates, shape (n, 3), float64, wrapped into [0, 1)
* ``L`` lattice, shape (3, 3), float64, lattice vectors as rows, in Å

Conversions to and from pymatgen ``Structure`` and ASE ``Atoms`` are lossless for
these three arrays (periodic boundary conditions are always on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dosmatgen.elements import check_atomic_numbers, symbol
from dosmatgen.errors import InvalidRecordError

#: Atoms closer than this (Å, periodic images included) are "on top of each other".
MIN_INTERATOMIC_DISTANCE = 0.5
#: Cells smaller than this (Å^3) are degenerate.
MIN_CELL_VOLUME = 0.1


def wrap_fractional(x: np.ndarray) -> np.ndarray:
    """Wrap fractional coordinates into [0, 1), mapping values that round to 1.0 back to 0."""
    w = np.mod(x, 1.0)
    w[w >= 1.0] = 0.0
    return w


@dataclass(frozen=True, eq=False)
class Crystal:
    atomic_numbers: np.ndarray
    frac_coords: np.ndarray
    lattice: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        z = check_atomic_numbers(np.atleast_1d(np.asarray(self.atomic_numbers)))
        x = np.asarray(self.frac_coords, dtype=np.float64).reshape(-1, 3) if np.size(self.frac_coords) else np.zeros((0, 3))
        lat = np.asarray(self.lattice, dtype=np.float64)
        if lat.shape != (3, 3):
            raise InvalidRecordError(f"lattice must be 3x3, got shape {lat.shape}")
        if x.shape[0] != z.shape[0]:
            raise InvalidRecordError(f"{z.shape[0]} atomic numbers but {x.shape[0]} coordinate rows")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(lat))):
            raise InvalidRecordError("non-finite coordinates or lattice")
        object.__setattr__(self, "atomic_numbers", z)
        object.__setattr__(self, "frac_coords", wrap_fractional(x))
        object.__setattr__(self, "lattice", lat)

    # ------------------------------------------------------------------ basics
    @property
    def num_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))

    @property
    def cart_coords(self) -> np.ndarray:
        return self.frac_coords @ self.lattice

    @property
    def symbols(self) -> list[str]:
        return [symbol(z) for z in self.atomic_numbers]

    @property
    def formula(self) -> str:
        return self.to_pymatgen().composition.reduced_formula if self.num_atoms else ""

    def __repr__(self) -> str:
        return f"Crystal({self.formula or 'empty'}, n={self.num_atoms}, V={self.volume:.2f} A^3)"

    def equals(self, other: "Crystal", atol: float = 1e-8) -> bool:
        """Exact array equality up to ``atol`` (no symmetry matching: use StructureMatcher for that)."""
        if self.num_atoms != other.num_atoms:
            return False
        dx = self.frac_coords - other.frac_coords
        dx -= np.round(dx)
        return bool(
            np.array_equal(self.atomic_numbers, other.atomic_numbers)
            and np.allclose(dx, 0.0, atol=atol)
            and np.allclose(self.lattice, other.lattice, atol=atol)
        )

    def with_metadata(self, **kw: Any) -> "Crystal":
        return Crystal(self.atomic_numbers, self.frac_coords, self.lattice, {**self.metadata, **kw})

    # -------------------------------------------------------------- geometry
    def min_interatomic_distance(self) -> float:
        """Smallest distance between two atoms, periodic images included (inf for one atom in a big cell)."""
        if self.num_atoms == 0:
            return float("inf")
        from pymatgen.core import Lattice

        lat = Lattice(self.lattice)
        d = lat.get_all_distances(self.frac_coords, self.frac_coords)
        if self.num_atoms > 1:
            np.fill_diagonal(d, np.inf)
            dmin = float(d.min())
        else:
            dmin = float("inf")
        # the shortest lattice vector is the distance of an atom to its own image
        self_image = float(np.min(np.linalg.norm(lat.get_lll_reduced_lattice().matrix, axis=1)))
        return min(dmin, self_image)

    def validate_geometry(
        self, min_distance: float = MIN_INTERATOMIC_DISTANCE, min_volume: float = MIN_CELL_VOLUME
    ) -> None:
        """Raise InvalidRecordError for an empty structure, a degenerate cell or overlapping atoms."""
        if self.num_atoms == 0:
            raise InvalidRecordError("empty structure (no atoms)")
        if self.volume < min_volume:
            raise InvalidRecordError(f"cell volume {self.volume:.3g} A^3 is below {min_volume} A^3")
        dmin = self.min_interatomic_distance()
        if dmin < min_distance:
            raise InvalidRecordError(f"atoms on top of each other: closest pair {dmin:.3f} A < {min_distance} A")

    # ------------------------------------------------------------ conversions
    @classmethod
    def from_pymatgen(cls, structure, metadata: dict[str, Any] | None = None) -> "Crystal":
        if not structure.is_ordered:
            raise InvalidRecordError("disordered structure (partial occupancies) is not supported")
        z = [site.specie.Z for site in structure]
        return cls(np.array(z, dtype=np.int64), structure.frac_coords, structure.lattice.matrix, dict(metadata or {}))

    def to_pymatgen(self):
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), [int(z) for z in self.atomic_numbers], self.frac_coords)

    @classmethod
    def from_ase(cls, atoms, metadata: dict[str, Any] | None = None) -> "Crystal":
        if not all(atoms.pbc):
            raise InvalidRecordError("ASE Atoms must be periodic in all three directions")
        return cls(atoms.get_atomic_numbers(), atoms.get_scaled_positions(wrap=False), np.asarray(atoms.cell[:]), dict(metadata or {}))

    def to_ase(self):
        from ase import Atoms

        return Atoms(numbers=self.atomic_numbers, scaled_positions=self.frac_coords, cell=self.lattice, pbc=True)
