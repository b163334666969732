"""What a relaxation returns for one structure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal

#: status values of :class:`RelaxResult`
CONVERGED, NOT_CONVERGED, FAILED, REJECTED = "converged", "not_converged", "failed", "rejected"

#: why a structure was rejected before the MLFF or failed during the relaxation (``RelaxResult.failure``)
FAILURE_KINDS = {
    "empty": "no atoms",
    "unsupported_elements": "elements the MLFF does not support",
    "bad_cell": "non-positive or absurd cell volume",
    "overlapping_atoms": "atoms closer than the minimum distance before relaxation",
    "mlff_error": "the MLFF could not evaluate the structure",
    "nonfinite": "non-finite energy, forces or stress",
    "geometry_invalid": "the geometry became non-finite or invalid",
    "cell_exploded": "the cell exploded or collapsed",
    "atoms_collapsed": "atoms collapsed onto each other",
}


@dataclass(frozen=True)
class TrajectoryFrame:
    """One evaluated geometry: crystal, total energy (eV) and the convergence measure fmax (eV/Å)."""

    crystal: Crystal
    energy: float
    fmax: float


@dataclass
class RelaxResult:
    """Outcome of relaxing one structure.

    * ``initial`` the input crystal; ``relaxed`` the last geometry (None when rejected or failed before
      the first evaluation);
    * ``energy_initial`` / ``energy_relaxed`` total energies in eV (NaN when unknown);
    * ``steps`` optimizer steps taken (evaluations = steps + 1);
    * ``converged`` True when fmax < the requested fmax;
    * ``status`` one of ``converged``, ``not_converged`` (hit max steps), ``failed`` (flagged during the
      relaxation), ``rejected`` (never given to the MLFF); ``reason`` says why for the last two, in words, and
      ``failure`` as one of the keys of :data:`FAILURE_KINDS`;
    * ``fmax`` final convergence measure, eV/Å (atoms and scaled cell rows, as ASE);
    * ``trajectory`` frames when requested.
    """

    index: int
    initial: Crystal
    relaxed: Crystal | None = None
    energy_initial: float = float("nan")
    energy_relaxed: float = float("nan")
    steps: int = 0
    converged: bool = False
    status: str = NOT_CONVERGED
    reason: str | None = None
    failure: str | None = None
    fmax: float = float("nan")
    trajectory: list[TrajectoryFrame] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        return self.initial.num_atoms

    @property
    def energy_initial_per_atom(self) -> float:
        return self.energy_initial / self.n_atoms if self.n_atoms else float("nan")

    @property
    def energy_relaxed_per_atom(self) -> float:
        return self.energy_relaxed / self.n_atoms if self.n_atoms else float("nan")

    @property
    def ok(self) -> bool:
        """A usable relaxed structure with a finite energy (converged or not)."""
        return self.status in (CONVERGED, NOT_CONVERGED) and self.relaxed is not None and bool(np.isfinite(self.energy_relaxed))

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-friendly row (no structures)."""
        return {
            "index": self.index,
            "id": self.initial.metadata.get("id", self.initial.metadata.get("record", self.index)),
            "formula": self.initial.formula,
            "n_atoms": self.n_atoms,
            "status": self.status,
            "reason": self.reason or "",
            "failure": self.failure or "",
            "converged": self.converged,
            "steps": self.steps,
            "fmax": self.fmax,
            "energy_initial": self.energy_initial,
            "energy_relaxed": self.energy_relaxed,
            "energy_initial_per_atom": self.energy_initial_per_atom,
            "energy_relaxed_per_atom": self.energy_relaxed_per_atom,
            "volume_initial": self.initial.volume,
            "volume_relaxed": self.relaxed.volume if self.relaxed is not None else float("nan"),
        }
