"""Test helper: synthetic per-atom total DOS rows and a tiny DOSSampler trained on them in a few seconds."""

from __future__ import annotations

import numpy as np
import torch

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos.properties import derived_properties_batch
from dosmatgen.dos_sampler.checkpoint import DosSampler
from dosmatgen.dos_sampler.loss import lambda_denoising_loss
from dosmatgen.dos_sampler.network import DosScoreNetwork, NetworkConfig
from dosmatgen.dos_sampler.property_regressor import REGRESSED
from dosmatgen.dos_sampler.tokens import tokenize
from dosmatgen.dos_sampler.train import fit_regressor

E = TOTAL_GRID.energies


def synthetic_dos(n: int, seed: int = 0) -> np.ndarray:
    """Half metals (a band across E_F of random height), half insulators (zero in a gap around E_F)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        d = sum(rng.uniform(0.3, 2.0) * np.exp(-0.5 * ((E - rng.uniform(-9, 9)) / rng.uniform(0.3, 1.5)) ** 2) for _ in range(4))
        if i % 2:
            gap = rng.uniform(0.5, 3.0)
            d = d * (np.abs(E) > gap / 2)
        else:
            d = d + rng.uniform(0.1, 3.0) * np.exp(-0.5 * (E / 1.5) ** 2)
        rows.append(d)
    return np.asarray(rows)


def tiny_sampler(n: int = 64, steps: int = 100, regressor_steps: int = 200, seed: int = 0) -> DosSampler:
    dos = synthetic_dos(n, seed)
    tok = tokenize(dos)
    tokens, log_k = torch.as_tensor(tok.tokens), torch.as_tensor(np.log(tok.scale), dtype=torch.float32)
    torch.manual_seed(seed)
    net = DosScoreNetwork(NetworkConfig(d_model=32, token_dim=8, patch=8, n_layers=1, n_heads=2))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, n, (16,), generator=gen)
        loss = lambda_denoising_loss(net, tokens[idx], log_k[idx], prior_prob=0.3, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    props = derived_properties_batch(dos)
    y = torch.as_tensor(np.stack([props[name] for name in REGRESSED], axis=1))
    reg = fit_regressor(net, tokens, log_k, y, steps=regressor_steps, lr=3e-3, batch_size=16, seed=seed)
    reg.eval()
    return DosSampler(network=net, k_values=tok.scale, regressor=reg, reference_te_dos=dos[1], reference_te_id="synthetic-1",
                      meta={"k_band_gap": props["band_gap"].tolist()})
