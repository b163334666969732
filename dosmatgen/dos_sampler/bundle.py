"""Finish a trained DOSSampler run into a shippable checkpoint: measured gap placement and width offset,
the reference thermoelectric DOS and the default guidance scale.

    python -m dosmatgen.dos_sampler.bundle runs/dossampler/final.pt dosmatgen/resources/checkpoints/dossampler-small.pt \
        --store dosmatgen/resources/data/gpaw-v2.zarr --guidance-scale 2.0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dosmatgen.dos_sampler.checkpoint import load_dossampler, save_dossampler
from dosmatgen.dos_sampler.data import load_split
from dosmatgen.dos_sampler.priors import measure_gap_placement
from dosmatgen.dos_sampler.reference import reference_thermoelectric


def finalize(run_checkpoint: str | Path, out: str | Path, store: str | Path, guidance_scale: float) -> dict:
    sampler = load_dossampler(run_checkpoint)
    placement = measure_gap_placement(load_split(store, "train").dos)
    ref_id, ref_dos = reference_thermoelectric(store)
    sampler.gap_placement = placement["best"]
    sampler.reference_te_id, sampler.reference_te_dos = ref_id, ref_dos
    sampler.guidance_scale = guidance_scale
    sampler.meta = {**sampler.meta, "gap_placement_measurement": placement, "gap_width_offset_ev": placement["gap_width_offset_ev"]}
    save_dossampler(out, sampler)
    return placement


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--store", default="dosmatgen/resources/data/gpaw-v2.zarr")
    ap.add_argument("--guidance-scale", type=float, default=2.0)
    args = ap.parse_args(argv)
    print(finalize(args.checkpoint, args.out, args.store, args.guidance_scale))


if __name__ == "__main__":
    main()
