"""Tiny, quickly trainable setups for the sampling tests.

* :func:`peak_world`: a synthetic world whose site DOS is a known function of the element only (one Gaussian peak
  per element at a fixed energy), so the DOS of a generated crystal is exact and free to evaluate
  (:func:`peak_dos`). Used for the window-conditioning and classifier-guidance tests.
* :func:`fit_denoiser` / :func:`fit_regressor`: short training loops on a fixed list of ``Data`` built on the
  library's ``train_step`` / ``regressor_loss``.
* :func:`bundled_subset`: a few small real structures (with their scaled site DOS) from the bundled store.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Batch, Data

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.regressor.model import NoisyDOSRegressor
from dosmatgen.regressor.train import regressor_loss
from dosmatgen.training.condition_dropout import ConditionDropoutConfig
from dosmatgen.training.step import train_step

#: Elements of the peak world and the energy (eV) of each one's DOS peak.
PEAK_ELEMENTS = (2, 3, 4, 5, 6, 7, 8, 9)
#: Vocabulary size used with the peak world (a small one makes the type signal strong enough to learn in seconds).
PEAK_NUM_CLASSES = 10
PEAK_CENTRES = (-8.0, -6.0, -4.0, -2.0, 2.0, 4.0, 6.0, 8.0)
PEAK_WIDTH_EV = 0.5
PEAK_HEIGHT = 4.0


def peak_dos(z: torch.Tensor) -> torch.Tensor:
    """(N,) atomic numbers -> (N, 400) DOS rows: a Gaussian at the element's centre (0 for other elements)."""
    e = torch.as_tensor(SITE_GRID.energies, dtype=torch.float32)
    lookup = {zz: c for zz, c in zip(PEAK_ELEMENTS, PEAK_CENTRES)}
    centres = torch.tensor([lookup.get(int(v), float("nan")) for v in z], dtype=torch.float32)
    rows = PEAK_HEIGHT * torch.exp(-0.5 * ((e - centres.unsqueeze(-1)) / PEAK_WIDTH_EV) ** 2)
    return torch.nan_to_num(rows, nan=0.0)


def peak_world(num: int, seed: int = 0, num_atoms: int = 2) -> list[Data]:
    """``num`` crystals of ``num_atoms`` atoms with random peak-world elements, a cubic-ish 3-4 Å cell, random
    coordinates, and ``site_dos`` = :func:`peak_dos` of each atom."""
    gen = torch.Generator().manual_seed(seed)
    elements = torch.tensor(PEAK_ELEMENTS)
    out = []
    for _ in range(num):
        z = elements[torch.randint(0, len(elements), (num_atoms,), generator=gen)]
        lattice = torch.diag(3.0 + torch.rand(3, generator=gen)) + 0.1 * torch.randn(3, 3, generator=gen)
        out.append(Data(atom_types=z, frac_coords=torch.rand(num_atoms, 3, generator=gen), lattice=lattice.unsqueeze(0),
                        num_atoms=torch.tensor([num_atoms]), site_dos=peak_dos(z), num_nodes=num_atoms))
    return out


def fit_denoiser(
    data: list[Data], config: DenoiserConfig, diffusion_config: DiffusionConfig, steps: int, *,
    batch_size: int = 32, lr: float = 2e-3, dropout: ConditionDropoutConfig | None = None, seed: int = 0,
) -> tuple[CSPNetDenoiser, JointDiffusion, list[float]]:
    """Train a denoiser for ``steps`` Adam steps on random mini-batches of ``data``; returns model (eval), diffusion,
    per-step losses."""
    torch.manual_seed(seed)
    model = CSPNetDenoiser(config)
    diffusion = JointDiffusion(diffusion_config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        idx = torch.randperm(len(data), generator=gen)[:batch_size]
        batch = Batch.from_data_list([data[int(i)] for i in idx])
        losses.append(train_step(model, diffusion, batch, opt, dropout=dropout, grad_clip=1.0, grad_clip_mode="norm", generator=gen)["loss"])
    return model.eval(), diffusion, losses


def fit_regressor(
    data: list[Data], config: RegressorConfig, diffusion: JointDiffusion, steps: int, *,
    batch_size: int = 32, lr: float = 2e-3, seed: int = 0,
) -> tuple[NoisyDOSRegressor, list[float]]:
    torch.manual_seed(seed)
    model = NoisyDOSRegressor(config)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        idx = torch.randperm(len(data), generator=gen)[:batch_size]
        batch = Batch.from_data_list([data[int(i)] for i in idx])
        opt.zero_grad()
        loss = regressor_loss(model, diffusion, batch, gen)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def bundled_subset(num: int = 8, max_atoms: int = 4) -> list[Data]:
    """The first ``num`` training structures of the bundled store with at most ``max_atoms`` atoms (scaled DOS)."""
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.torch_dataset import CrystalDOSDataset

    ds = CrystalDOSDataset(bundled_dataset_path(), "train")
    picked = []
    seen = set()
    for i in range(len(ds)):
        d = ds[i]
        key = tuple(sorted(d.atom_types.tolist()))
        if int(d.num_atoms) <= max_atoms and key not in seen:  # distinct compositions
            picked.append(Data(atom_types=d.atom_types, frac_coords=d.frac_coords, lattice=d.lattice,
                               num_atoms=d.num_atoms, site_dos=d.site_dos, num_nodes=int(d.num_atoms)))
            seen.add(key)
        if len(picked) == num:
            break
    return picked
