"""Classifier-free training of the condition: whole-crystal dropout, partial-site conditioning, random energy windows.

For every crystal of a batch, independently:

1. with probability ``p_uncond`` the WHOLE condition is dropped (mask 0 on every atom): the unconditional model;
2. otherwise, with probability ``p_partial_sites`` (site mode only) only a random non-empty subset of its sites
   keeps the condition (each site kept with a probability drawn uniformly from (0, 1) per crystal), so that
   masked generation (conditioning on some atoms) is in distribution;
3. independently of 2, with probability ``p_window`` the condition is restricted to a random energy window
   [lo, hi] (one window per crystal, shared by its sites): width uniform in [min_width_ev, max_width_ev],
   centre uniform among positions that keep the window inside the grid. The window is fed to the model as a
   mask channel, so conditioning on e.g. E_F ± 2 eV at sampling time is in distribution.

The defaults (0.2 / 0.2 / 0.2, widths 1–10 eV) are documented in docs/model.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch

from dosmatgen.dos.grid import EnergyGrid
from dosmatgen.model.conditioning import DOSCondition


@dataclass(frozen=True)
class ConditionDropoutConfig:
    p_uncond: float = 0.2
    p_partial_sites: float = 0.2
    p_window: float = 0.2
    min_width_ev: float = 1.0
    max_width_ev: float = 10.0

    def __post_init__(self) -> None:
        for name in ("p_uncond", "p_partial_sites", "p_window"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {p}")
        if not 0 < self.min_width_ev <= self.max_width_ev:
            raise ValueError(f"need 0 < min_width_ev <= max_width_ev, got {self.min_width_ev}, {self.max_width_ev}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConditionDropoutConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown conditioning config keys: {sorted(unknown)}")
        return cls(**dict(d))


@dataclass(frozen=True)
class DropoutDraws:
    """Uniforms in [0, 1) that decide the dropout of one batch, when they are drawn elsewhere (for example per
    structure, see :mod:`dosmatgen.training.keyed_randomness`): ``crystal`` (B, 3) = (drop, partial, window)
    decisions, ``keep_prob`` (B,) the per-crystal site-keep probability, ``site`` (N,) one draw per site, ``window``
    (B, 2) the window's width and position."""

    crystal: torch.Tensor
    keep_prob: torch.Tensor
    site: torch.Tensor
    window: torch.Tensor


def random_windows(
    num_crystals: int, grid: EnergyGrid, min_width: float, max_width: float,
    generator: torch.Generator | None = None, device: torch.device | str = "cpu", uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, grid.n) float 0/1 masks of random windows [lo, hi] ⊂ [grid.emin, grid.emax] (widths in eV).

    ``uniforms`` (B, 2) in [0, 1): pre-drawn (width, position) uniforms instead of draws from ``generator``."""
    span = grid.emax - grid.emin
    max_w = min(max_width, span)
    min_w = min(min_width, max_w)
    u = torch.rand(num_crystals, 2, generator=generator, device=device, dtype=torch.float64) if uniforms is None else uniforms.double()
    width = min_w + (max_w - min_w) * u[:, 0]
    lo = grid.emin + (span - width) * u[:, 1]
    energies = torch.as_tensor(grid.energies, dtype=torch.float64, device=device)
    inside = (energies >= lo.unsqueeze(-1) - 1e-9) & (energies <= (lo + width).unsqueeze(-1) + 1e-9)
    return inside.float()


def apply_condition_dropout(
    cond: DOSCondition,
    batch: torch.Tensor,
    num_crystals: int,
    mode: str,
    grid: EnergyGrid,
    config: ConditionDropoutConfig,
    generator: torch.Generator | None = None,
    draws: "DropoutDraws | None" = None,
) -> DOSCondition:
    """Randomise a full training condition as described in the module docstring.

    Args:
        cond: the full condition (site mode: rows are atoms; total mode: rows are crystals).
        batch: (N,) crystal index of each atom. num_crystals: B. mode: "site" or "total".
        grid: the energy grid of the condition's bins (SITE_GRID or TOTAL_GRID).
        draws: pre-drawn uniforms (see :class:`DropoutDraws`); without them everything is drawn from ``generator``.
    Returns:
        A new DOSCondition with the randomised mask and window (the DOS values are unchanged).
    """
    device = cond.dos.device
    u = torch.rand(num_crystals, 3, generator=generator, device=device) if draws is None else draws.crystal.to(device)
    keep_crystal = (u[:, 0] >= config.p_uncond).float()  # (B,)
    use_window = u[:, 2] < config.p_window  # (B,)

    if mode == "site":
        mask = cond.mask * keep_crystal[batch]
        partial = (u[:, 1] < config.p_partial_sites) & (keep_crystal > 0)
        if bool(partial.any()):
            if draws is None:
                keep_prob = torch.rand(num_crystals, generator=generator, device=device)
                site_u = torch.rand(batch.shape[0], generator=generator, device=device)
            else:
                keep_prob, site_u = draws.keep_prob.to(device), draws.site.to(device)
            kept = site_u < keep_prob[batch]
            # guarantee a non-empty subset: the site with the smallest draw of each crystal is always kept
            first = torch.full((num_crystals,), 2.0, device=device).scatter_reduce(0, batch, site_u, "amin")
            kept = kept | (site_u == first[batch])
            mask = torch.where(partial[batch], mask * kept.float(), mask)
        rows_window = use_window[batch]
        row_crystal = batch
    elif mode == "total":
        mask = cond.mask * keep_crystal
        rows_window = use_window
        row_crystal = torch.arange(num_crystals, device=device)
    else:
        raise ValueError(f"condition dropout needs mode 'site' or 'total', got {mode!r}")

    window = cond.full_window()
    if bool(use_window.any()):
        crystal_windows = random_windows(num_crystals, grid, config.min_width_ev, config.max_width_ev, generator, device,
                                         uniforms=None if draws is None else draws.window)
        window = torch.where(rows_window.unsqueeze(-1), window * crystal_windows[row_crystal].to(window.dtype), window)
    return DOSCondition(dos=cond.dos, mask=mask, window=window)
