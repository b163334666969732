"""Optional formation energies (eV/atom) of generated and ground-truth structures from an MLFF relaxation.

Behind ``--relax`` (off by default: on CPU, CHGNet relaxation costs seconds per structure). Each structure is
relaxed with :class:`~dosmatgen.relax.batched_fire.BatchedRelaxer` (FIRE + Frechet cell filter, one MLFF call per
step for the batch); the formation energy ``E_f = (E − Σ n_Z μ_Z) / N`` uses elemental references from the SAME
force field (:class:`~dosmatgen.relax.references.ElementalReferences`, cached on disk). Unrelaxed = the energy of
the input geometry, relaxed = the last geometry. A structure that is invalid, rejected by the prefilter or fails
gives NaN, counted by :func:`dosmatgen.metrics.energy.energy_summary`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

from dosmatgen.crystal import Crystal
from dosmatgen.errors import DosmatgenError

log = logging.getLogger(__name__)


@dataclass
class FormationEnergies:
    """(unrelaxed, relaxed) formation energies in eV/atom, one per input structure (NaN = unknown)."""

    unrelaxed: list[float]
    relaxed: list[float]
    statuses: list[str]
    seconds: float
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        counts = {s: self.statuses.count(s) for s in sorted(set(self.statuses))}
        return {"unrelaxed": self.unrelaxed, "relaxed": self.relaxed, "status_counts": counts, "seconds": self.seconds,
                "errors": list(self.errors)}


class FormationEnergyCalculator:
    """Relaxes structures with one MLFF (built on first use) and returns their formation energies."""

    def __init__(self, mlff: str = "chgnet", fmax: float = 0.05, max_steps: int = 300, batch_size: int = 32, **mlff_options) -> None:
        self.mlff_name = mlff
        self.fmax = float(fmax)
        self.max_steps = int(max_steps)
        self.batch_size = int(batch_size)
        self.mlff_options = mlff_options
        self._mlff = None
        self._references = None

    def _setup(self):
        if self._mlff is None:
            from dosmatgen.relax.mlff import get_mlff
            from dosmatgen.relax.references import ElementalReferences

            self._mlff = get_mlff(self.mlff_name, **self.mlff_options)
            self._references = ElementalReferences(self._mlff)
        return self._mlff, self._references

    def describe(self) -> dict:
        return {"mlff": self.mlff_name, "fmax_eV_per_A": self.fmax, "max_steps": self.max_steps, "batch_size": self.batch_size}

    def __call__(self, structures: Sequence[Crystal | None]) -> FormationEnergies:
        from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings
        from dosmatgen.relax.formation_energy import formation_energies

        t0 = time.perf_counter()
        n = len(structures)
        unrelaxed, relaxed, statuses = [float("nan")] * n, [float("nan")] * n, ["invalid"] * n
        keep = [i for i, c in enumerate(structures) if c is not None]
        errors: list[str] = []
        if keep:
            mlff, refs = self._setup()
            settings = RelaxSettings(fmax=self.fmax, max_steps=self.max_steps, batch_size=self.batch_size)
            results = BatchedRelaxer(mlff, settings).run([structures[i] for i in keep])
            for i, r in zip(keep, results):
                statuses[i] = r.status
            try:
                pairs = formation_energies(results, refs)
            except (DosmatgenError, KeyError, ValueError) as exc:
                errors.append(f"formation energies unavailable: {type(exc).__name__}: {exc}")
                log.warning("%s", errors[-1])
                pairs = [(float("nan"), float("nan"))] * len(results)
            for i, (e0, e1) in zip(keep, pairs):
                unrelaxed[i], relaxed[i] = float(e0), float(e1)
        return FormationEnergies(unrelaxed, relaxed, statuses, time.perf_counter() - t0, errors)
