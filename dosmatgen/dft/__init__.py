"""DFT engines that compute site- and l-projected DOS records, and the resumable batch driver.

* :mod:`dosmatgen.dft.engine`: the engine interface (:class:`DFTEngine`), its errors and the engine registry.
* :mod:`dosmatgen.dft.gpaw_engine`: GPAW (PBE, plane waves) with the settings of the bundled dos-gpaw-v1 data.
* :mod:`dosmatgen.dft.compute`: :func:`compute_dos_dataset`, one subprocess per structure, one record file each.

GPAW is GPL and an optional extra (``pip install dosmatgen[dft]``); it is imported only when a calculation runs.
"""

from dosmatgen.dft.engine import (
    DFTCalculationError,
    DFTEngine,
    EngineUnavailableError,
    available_engines,
    get_engine,
)

__all__ = [
    "DFTCalculationError",
    "DFTEngine",
    "EngineUnavailableError",
    "available_engines",
    "get_engine",
]
