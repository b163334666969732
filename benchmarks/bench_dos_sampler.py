"""Benchmark: DOSSampler spectra per second on CPU (Algorithm 2, 32 steps + 1 corrector round per step).

    python benchmarks/bench_dos_sampler.py [--checkpoint bundled:dossampler-small] [--batch 64] [--threads 1]

Times ``generate_batch`` (no rejection) for an unconditional batch and a guided batch (DOS(E_F) = 1.5, the
regressor gradient on every network call), after one warm-up batch of 4. Prints spectra per second.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dosmatgen.dos_sampler import PropertyTargets
from dosmatgen.dos_sampler.checkpoint import load_dossampler
from dosmatgen.dos_sampler.generate import generate_batch
from dosmatgen.dos_sampler.sampler import SamplingConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="bundled:dossampler-small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sampler = load_dossampler(args.checkpoint)
    cfg = SamplingConfig(steps=args.steps)
    generate_batch(sampler, PropertyTargets(), 4, seed=0, sampling=cfg)
    print(f"threads {args.threads}, batch {args.batch}, steps {args.steps}, load average {os.getloadavg()[0]:.1f}")
    for name, targets in (("unconditional", PropertyTargets()), ("guided DOS(E_F)=1.5", PropertyTargets(dos_ef=1.5))):
        t0 = time.perf_counter()
        wall0 = time.process_time()
        generate_batch(sampler, targets, args.batch, seed=1, sampling=cfg)
        wall, cpu = time.perf_counter() - t0, time.process_time() - wall0
        print(f"{name}: {args.batch / wall:.2f} spectra/s wall ({wall:.1f} s), {args.batch / cpu:.2f} spectra per CPU-second")


if __name__ == "__main__":
    main()
