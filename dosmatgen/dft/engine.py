"""The interface every DFT engine implements, its errors, and the registry that builds engines by name.

An engine turns one :class:`~dosmatgen.crystal.Crystal` into one :class:`~dosmatgen.dos.record.DOSRecord`
of the same shape the dataset readers yield: ``site_dos`` (n_atoms, 3, n_E) s/p/d in states/eV,
``total_dos`` (n_E,) states/eV, both on ``energies`` relative to E_F (eV), the absolute ``efermi`` and the total
``energy`` in the engine's own reference, and ``metadata`` with at least ``n_electrons``, ``n_ibz_kpoints``,
``seconds`` (wall time of the calculation) and ``settings`` (a JSON-serialisable dict).

Engines are rebuilt in worker subprocesses from their class and ``config()``, so an engine's whole state must be in its
config. ``compute_dos`` runs in the calling process; isolation and time limits live in
:mod:`dosmatgen.dft.compute`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from dosmatgen.crystal import Crystal
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import DosmatgenError


class EngineUnavailableError(DosmatgenError):
    """The engine's program or Python package is not installed (the message says how to install it)."""


class DFTCalculationError(DosmatgenError):
    """One calculation failed; ``kind`` is a short machine-readable reason.

    Kinds used by the engines: ``not_converged`` (SCF did not converge), ``no_fermi_level`` (no finite E_F or an
    empty DOS), ``invalid_input`` (the structure cannot be computed), ``engine_error`` (anything else the engine
    raised). The batch driver adds ``timeout`` and ``crashed`` (the worker process died).
    """

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


class DFTEngine(ABC):
    """A DFT code that computes the site- and l-projected DOS of one crystal."""

    #: registry name, e.g. ``"gpaw"``
    name: str = ""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this engine: ``get_engine(name, **config())``."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The physical settings stored with every record (functional, basis, k-points, smearing, DOS width...)."""

    @abstractmethod
    def check_available(self) -> None:
        """Raise :class:`EngineUnavailableError` with install instructions when the engine cannot run here."""

    @abstractmethod
    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        """Compute the DOS of ``crystal`` in this process and return a validated record.

        ``workdir`` is an existing directory the engine owns for this structure (logs, input and output files).
        Raises :class:`DFTCalculationError` when the calculation fails. The record's crystal is the structure
        actually computed (engines may standardise the cell).
        """


#: name -> "module:ClassName"; imported lazily so that listing engines never imports a DFT code.
_ENGINES: dict[str, str] = {
    "gpaw": "dosmatgen.dft.gpaw_engine:GPAWEngine",
    "vasp": "dosmatgen.dft.vasp_engine:VASPEngine",
    # a model DOS in milliseconds for tests and demos of DFT-consuming workflows; not DFT (analytic_engine.py)
    "analytic": "dosmatgen.dft.analytic_engine:AnalyticEngine",
}


def available_engines() -> list[str]:
    """Names accepted by :func:`get_engine` (registered, not necessarily installed)."""
    return sorted(_ENGINES)


def register_engine(name: str, target: str) -> None:
    """Register an engine class given as ``"module:ClassName"`` (used by engines living outside this package)."""
    _ENGINES[name] = target


def get_engine(name: str, **config: Any) -> DFTEngine:
    """Build the engine ``name`` with keyword arguments ``config`` (see each engine's ``config()``)."""
    try:
        target = _ENGINES[name]
    except KeyError:
        raise DosmatgenError(f"unknown DFT engine {name!r}; known engines: {', '.join(available_engines())}") from None
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**config)
