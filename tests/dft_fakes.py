"""A fake DFT engine for testing the batch driver without a DFT code (imported by the worker subprocess too:
tests put this folder on PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dft.engine import DFTCalculationError, DFTEngine
from dosmatgen.dos.grid import GPAW_V1_GRID
from dosmatgen.dos.record import DOSRecord


class FakeEngine(DFTEngine):
    """Per-id behaviour: ``ok`` (Gaussian bands), ``sleep`` (hangs), ``crash`` (os.abort), ``fail``
    (DFTCalculationError not_converged), ``raise`` (an unexpected RuntimeError)."""

    name = "fake"

    def __init__(self, behaviours: dict[str, str] | None = None, sleep_s: float = 60.0):
        self.behaviours = dict(behaviours or {})
        self.sleep_s = float(sleep_s)

    def config(self) -> dict[str, Any]:
        return {"behaviours": self.behaviours, "sleep_s": self.sleep_s}

    def settings(self) -> dict[str, Any]:
        return {"code": "fake"}

    def check_available(self) -> None:
        return None

    def compute_dos(self, crystal: Crystal, id: str, workdir: str | Path) -> DOSRecord:
        what = self.behaviours.get(id, "ok")
        (Path(workdir) / "fake.log").write_text(f"{id}: {what}\n")
        if what == "sleep":
            time.sleep(self.sleep_s)
        elif what == "crash":
            os.abort()
        elif what == "fail":
            raise DFTCalculationError("not_converged", "fake SCF did not converge")
        elif what == "raise":
            raise RuntimeError("fake bug")
        e = GPAW_V1_GRID.energies
        site = np.stack([np.stack([np.exp(-((e + 2.0 * (l + 1)) ** 2)) for l in range(3)]) for _ in range(crystal.num_atoms)])
        return DOSRecord(
            id=id, source="fake", crystal=crystal, energies=e, site_dos=site, total_dos=site.sum(axis=(0, 1)),
            efermi=1.5, energy=-3.0,
            metadata={"n_electrons": 8.0, "n_ibz_kpoints": 1, "seconds": 0.01, "settings": self.settings()},
        )
