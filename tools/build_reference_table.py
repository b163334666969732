"""Compute the elemental reference energies of every element a force field supports and write them as the table
that ships with dosmatgen (``dosmatgen/resources/references/<name>@<version>.json``).

A run looks an element up in the shipped table of ITS force field (same ``cache_key``: name, package version and
model version) before relaxing the element's reference structures itself (:class:`dosmatgen.relax.references.
ElementalReferences`), so the table only saves time: the entries are what that code computes, with the same
structures, settings (fmax, max_steps) and force field. A different CHGNet version has another key and computes
its own. ``tests/test_shipped_references.py`` recomputes some entries and compares.

    OMP_NUM_THREADS=1 python tools/build_reference_table.py [--mlff chgnet]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

from dosmatgen.relax import get_mlff
from dosmatgen.relax.references import MAX_REFERENCE_Z, ElementalReferences, shipped_table_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mlff", default="chgnet")
    p.add_argument("--out", type=Path, default=None, help="default: the shipped table's path for this force field")
    args = p.parse_args(argv)
    mlff = get_mlff(args.mlff)
    elements = [z for z in range(1, MAX_REFERENCE_Z + 1) if z in mlff.supported_elements]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        refs = ElementalReferences(mlff, cache_path=Path(tmp) / "refs.json", shipped=False)
        refs.ensure(elements)
        payload = json.loads(refs.cache_path.read_text())
    payload["max_steps"] = refs.max_steps
    payload["built"] = {"command": "python tools/build_reference_table.py --mlff " + args.mlff,
                        "date": datetime.date.today().isoformat(), "seconds": round(time.perf_counter() - t0, 1)}
    out = args.out or shipped_table_path(mlff.cache_key)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"{len(payload['elements'])} elements in {payload['built']['seconds']} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
