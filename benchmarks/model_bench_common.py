"""Shared pieces of the model benchmarks: random 4–8-atom crystals, the matmul peak, peak RSS, FLOP counting."""

from __future__ import annotations

import resource
import sys
import time

import torch
from torch_geometric.data import Batch, Data

from dosmatgen.model.config import DenoiserConfig

CONFIGS = {"paper": DenoiserConfig.paper(), "small": DenoiserConfig.small()}


def random_batch(num_crystals: int, min_atoms: int = 4, max_atoms: int = 8, seed: int = 0) -> Batch:
    """Random crystals with ``min_atoms..max_atoms`` atoms and random scaled site DOS (what the model sees)."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(num_crystals):
        n = int(torch.randint(min_atoms, max_atoms + 1, (1,), generator=g))
        items.append(Data(atom_types=torch.randint(1, 84, (n,), generator=g), frac_coords=torch.rand(n, 3, generator=g),
                          lattice=(torch.eye(3) * 4 + 0.3 * torch.randn(3, 3, generator=g)).unsqueeze(0),
                          num_atoms=torch.tensor([n]), site_dos=torch.randn(n, 400, generator=g), num_nodes=n))
    return Batch.from_data_list(items)


def matmul_peak_gflops(n: int = 1024, seconds: float = 2.0) -> float:
    """Best GFLOP/s of float32 n×n matmuls over ~``seconds`` (the machine's practical peak for this library)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        dt = time.perf_counter() - t0
        best = max(best, 4 * 2 * n**3 / dt / 1e9)
    return best


def peak_rss_mib() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
