"""One interface for machine-learned (and analytic) force fields: energy, forces and stress of a BATCH.

Every backend implements :class:`MLFF`. One :meth:`MLFF.compute` call evaluates a whole batch of
structures (the batched relaxer makes exactly one such call per optimizer step).

Units and shapes (B structures, n_i atoms in structure i):

* input  ``numbers[i]``   (n_i,) int atomic numbers; ``positions[i]`` (n_i, 3) Cartesian Å;
  ``cells[i]`` (3, 3) lattice vectors as rows, Å; periodic in all three directions.
* output ``energy`` (B,) total energy, eV; ``forces[i]`` (n_i, 3) eV/Å;
  ``stress`` (B, 3, 3) eV/Å^3 in ASE's sign convention, ``stress = (1/V) dE/d(strain)``
  (positive = the cell wants to shrink; multiply by ``ase.units.GPa``'s inverse, 160.2177, for GPa).

Backends are created by name with :func:`get_mlff` (used by configs and by ``--mlff``):
``chgnet`` (default, weights in the wheel), ``orb`` (local checkpoint), ``sevenn`` (optional extra, SevenNet-0
weights in its wheel), ``emt`` and ``lj`` (analytic, tests).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError

#: The default force field.
DEFAULT_MLFF = "chgnet"


@dataclass(frozen=True)
class MLFFOutput:
    """Result of one batched evaluation.

    energy: (B,) eV (total, not per atom); forces: B arrays (n_i, 3) eV/Å; stress: (B, 3, 3) eV/Å^3.
    Non-finite values are passed through unchanged: the caller decides what a NaN means.
    ``errors`` maps the index of a structure the backend could not featurise (e.g. an isolated atom
    with no neighbour inside the cutoff) to the reason; its energy, forces and stress are NaN.
    """

    energy: np.ndarray
    forces: list[np.ndarray]
    stress: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = len(self.forces)
        if np.shape(self.energy) != (b,) or np.shape(self.stress) != (b, 3, 3):
            raise ValueError(
                f"inconsistent MLFF output: energy {np.shape(self.energy)}, {b} force arrays, stress {np.shape(self.stress)}"
            )

    def subset(self, index: Sequence[int]) -> "MLFFOutput":
        idx = list(index)
        errors = {new: self.errors[old] for new, old in enumerate(idx) if old in self.errors}
        return MLFFOutput(self.energy[idx], [self.forces[i] for i in idx], self.stress[idx], errors)

    @staticmethod
    def concatenate(parts: Sequence["MLFFOutput"]) -> "MLFFOutput":
        errors: dict[int, str] = {}
        offset = 0
        for p in parts:
            errors.update({offset + i: msg for i, msg in p.errors.items()})
            offset += len(p.forces)
        return MLFFOutput(
            np.concatenate([p.energy for p in parts]) if parts else np.zeros(0),
            [f for p in parts for f in p.forces],
            np.concatenate([p.stress for p in parts]) if parts else np.zeros((0, 3, 3)),
            errors,
        )

    @staticmethod
    def failed(n_atoms: Sequence[int], reason: str) -> "MLFFOutput":
        """An all-NaN output for structures that could not be evaluated at all."""
        b = len(n_atoms)
        return MLFFOutput(
            np.full(b, np.nan),
            [np.full((int(n), 3), np.nan) for n in n_atoms],
            np.full((b, 3, 3), np.nan),
            {i: reason for i in range(b)},
        )


class MLFF(abc.ABC):
    """A force field that evaluates many periodic structures in one call.

    Subclasses set :attr:`name`, :attr:`version` (identifies the parameters, used to key caches such as
    the elemental reference energies) and :attr:`supported_elements`, and implement :meth:`compute`.
    """

    #: short backend name, e.g. ``"chgnet"``
    name: str = "mlff"
    #: model/parameter version string, e.g. ``"chgnet-0.3.0"``
    version: str = "0"
    #: atomic numbers this force field can evaluate
    supported_elements: frozenset[int] = frozenset()

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise :class:`InvalidRecordError` for a bad option VALUE before anything is built (the keys are checked
        against the constructor by :func:`check_mlff_options`). Backends override this; the default checks nothing."""

    @abc.abstractmethod
    def compute(
        self, numbers: Sequence[np.ndarray], positions: Sequence[np.ndarray], cells: Sequence[np.ndarray]
    ) -> MLFFOutput:
        """Evaluate B structures at once; see the module docstring for units and shapes."""

    # ---------------------------------------------------------------- helpers
    @property
    def cache_key(self) -> str:
        """``name@version``: a string that changes whenever the energies could change."""
        return f"{self.name}@{self.version}"

    def unsupported_elements(self, numbers: np.ndarray) -> list[int]:
        """Atomic numbers in ``numbers`` that this force field cannot evaluate (sorted, unique)."""
        return sorted({int(z) for z in np.asarray(numbers).tolist()} - set(self.supported_elements))

    def compute_crystals(self, crystals: Sequence[Crystal]) -> MLFFOutput:
        """Evaluate :class:`~dosmatgen.crystal.Crystal` objects in one batched call."""
        return self.compute(
            [c.atomic_numbers for c in crystals], [c.cart_coords for c in crystals], [c.lattice for c in crystals]
        )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "n_supported_elements": len(self.supported_elements)}


# -------------------------------------------------------------------- registry
_REGISTRY: dict[str, Callable[..., MLFF]] = {}
#: the MLFF class behind each name ("module:Class"), for :func:`check_mlff_options`
_CLASSES: dict[str, str] = {}


def register_mlff(name: str, factory: Callable[..., MLFF], backend_class: str | None = None) -> None:
    """Make a backend available to :func:`get_mlff` under ``name`` (lower case). ``backend_class``
    (``"module:Class"``, an :class:`MLFF` subclass whose constructor takes the options) lets
    :func:`check_mlff_options` check options before the backend is built; without it they are checked when it is."""
    _REGISTRY[name.lower()] = factory
    if backend_class is not None:
        _CLASSES[name.lower()] = backend_class


def _chgnet(**opts: Any) -> MLFF:
    from dosmatgen.relax.mlff_chgnet import CHGNetMLFF

    return CHGNetMLFF(**opts)


def _orb(**opts: Any) -> MLFF:
    from dosmatgen.relax.mlff_orb import OrbMLFF

    return OrbMLFF(**opts)


def _sevenn(**opts: Any) -> MLFF:
    from dosmatgen.relax.mlff_sevenn import SevenNetMLFF

    return SevenNetMLFF(**opts)


def _emt(**opts: Any) -> MLFF:
    from dosmatgen.relax.mlff_analytic import EMTMLFF

    return EMTMLFF(**opts)


def _lj(**opts: Any) -> MLFF:
    from dosmatgen.relax.mlff_analytic import LennardJonesMLFF

    return LennardJonesMLFF(**opts)


for _name, _factory, _class in (
    ("chgnet", _chgnet, "dosmatgen.relax.mlff_chgnet:CHGNetMLFF"),
    ("orb", _orb, "dosmatgen.relax.mlff_orb:OrbMLFF"),
    ("sevenn", _sevenn, "dosmatgen.relax.mlff_sevenn:SevenNetMLFF"),
    ("emt", _emt, "dosmatgen.relax.mlff_analytic:EMTMLFF"),
    ("lj", _lj, "dosmatgen.relax.mlff_analytic:LennardJonesMLFF"),
):
    register_mlff(_name, _factory, _class)


def available_mlffs() -> list[str]:
    return sorted(_REGISTRY)


def check_mlff_options(name: str, options: dict[str, Any] | None) -> None:
    """Check backend options without building the backend (no weights are loaded): the name must be registered,
    every key must be a keyword of the backend's constructor, and the backend's :meth:`MLFF.check_options` must
    accept the values. Raises :class:`InvalidRecordError` naming the option."""
    import inspect

    from dosmatgen.dotted import resolve_callable

    key = str(name).lower()
    if key not in _REGISTRY:
        raise InvalidRecordError(f"unknown MLFF {name!r}; choose one of {', '.join(available_mlffs())}")
    if key not in _CLASSES:
        return
    cls = resolve_callable(_CLASSES[key])
    options = dict(options or {})
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in options if k not in params or k == "self")
    if unknown and not takes_any:
        known = [k for k, p in params.items() if k != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
        raise InvalidRecordError(f"MLFF {key!r} has no option {', '.join(map(repr, unknown))}; its options: "
                                 f"{', '.join(known) or 'none'}")
    cls.check_options(options)


def get_mlff(name: str = DEFAULT_MLFF, **opts: Any) -> MLFF:
    """Create a force field by name (``chgnet``, ``orb``, ``sevenn``, ``emt``, ``lj``) with backend options.

    Options are passed to the backend's constructor, e.g. ``get_mlff("orb", weights_path="orb-v2.ckpt")``
    or ``get_mlff("chgnet", device="cpu")``. Unknown names raise :class:`InvalidRecordError`.
    """
    key = str(name).lower()
    if key not in _REGISTRY:
        raise InvalidRecordError(f"unknown MLFF {name!r}; choose one of {', '.join(available_mlffs())}")
    return _REGISTRY[key](**opts)
