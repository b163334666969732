"""Worker process for one structure: ``python -m dosmatgen.dft.worker JOB.json``.

The batch driver (:mod:`dosmatgen.dft.compute`) writes ``JOB.json`` and starts this module in a fresh process
(its own session, thread counts set through the environment) so that a hang, a crash or a memory blow-up of the
DFT code never takes the batch down. The job file holds the engine (name, class and config), the id, source, the crystal
arrays and the paths of the record file and the result file.

On success the record file is written atomically and ``result.json`` says ``{"ok": true, ...}``; on a handled
failure ``result.json`` says ``{"ok": false, "kind": ..., "error": ...}``. Either way the exit status is 0; a
missing result file means the process died (the driver records that as ``crashed`` or ``timeout``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def _build_engine(job: dict[str, Any]):
    """The engine of a job: its class ``"module:QualName"`` when given (any importable engine), else its name."""
    import importlib

    from dosmatgen.dft.engine import get_engine

    config = job.get("engine_config", {})
    target = job.get("engine_class")
    if not target:
        return get_engine(job["engine"], **config)
    module_name, qualname = target.split(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj(**config)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job description in this process and return the result payload (also written to disk)."""
    import numpy as np

    from dosmatgen.crystal import Crystal
    from dosmatgen.dft.engine import DFTCalculationError
    from dosmatgen.dft.record_file import write_record_npz

    result_path = Path(job["result_path"])
    try:
        engine = _build_engine(job)
        crystal = Crystal(
            np.asarray(job["atomic_numbers"], dtype=np.int64),
            np.asarray(job["frac_coords"], dtype=np.float64),
            np.asarray(job["lattice"], dtype=np.float64),
            {"source": job["source"]},
        )
        record = engine.compute_dos(crystal, job["id"], job["workdir"])
        record.source = job["source"]
        write_record_npz(record, job["record_path"])
        payload = {"ok": True, "seconds": record.metadata.get("seconds"), "n_atoms": record.crystal.num_atoms}
    except DFTCalculationError as err:
        payload = {"ok": False, "kind": err.kind, "error": err.message}
    except Exception as err:  # anything unexpected is still one structure's failure, with its traceback logged
        traceback.print_exc()
        payload = {"ok": False, "kind": "engine_error", "error": f"{type(err).__name__}: {err}"}
    _write_json_atomic(result_path, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m dosmatgen.dft.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
