"""Synthetic crystals with fake (smooth, random) site and total DOS features, for model/training tests.

Each item is a torch_geometric ``Data`` with the fields of ``CrystalDOSDataset``: atom_types (n,) Z, frac_coords
(n, 3), lattice (1, 3, 3), num_atoms (1,), site_dos (n, 400) and total_dos (1, 256) (already "scaled").
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data


def _smooth_rows(rows: int, bins: int, gen: torch.Generator) -> torch.Tensor:
    raw = torch.randn(rows, 1, bins + 16, generator=gen)
    kernel = torch.ones(1, 1, 17) / 17.0
    return torch.nn.functional.conv1d(raw, kernel).reshape(rows, bins) * 4.0


def synthetic_crystals(num: int = 8, min_atoms: int = 2, max_atoms: int = 4, seed: int = 0) -> list[Data]:
    gen = torch.Generator().manual_seed(seed)
    elements = torch.tensor([3, 8, 14, 22, 26, 29, 47, 79])
    out = []
    for _ in range(num):
        n = int(torch.randint(min_atoms, max_atoms + 1, (1,), generator=gen))
        lattice = torch.diag(3.0 + 3.0 * torch.rand(3, generator=gen)) + 0.3 * torch.randn(3, 3, generator=gen)
        out.append(
            Data(
                atom_types=elements[torch.randint(0, len(elements), (n,), generator=gen)],
                frac_coords=torch.rand(n, 3, generator=gen),
                lattice=lattice.unsqueeze(0),
                num_atoms=torch.tensor([n]),
                site_dos=_smooth_rows(n, 400, gen),
                total_dos=_smooth_rows(1, 256, gen),
                num_nodes=n,
            )
        )
    return out
