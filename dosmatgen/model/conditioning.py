"""The DOS condition handed to the denoiser: values, a 0/1 mask of which atoms are conditioned, an energy window."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from dosmatgen.model.config import DenoiserConfig


@dataclass(frozen=True)
class DOSCondition:
    """A DOS condition in the layout of one :class:`~dosmatgen.model.config.DenoiserConfig` ``cond_mode``.

    * site mode: ``dos`` (N, D_site) scaled site DOS, ``mask`` (N,) 0/1 per atom, ``window`` (N, D_site) 0/1 or None.
    * total mode: ``dos`` (B, D_total) scaled crystal DOS, ``mask`` (B,) 0/1 per crystal, ``window`` (B, D_total) or None.

    ``mask`` = 0 means "this atom (crystal) is not conditioned": its projected condition is multiplied by 0,
    which is exactly the unconditional model. ``window`` = 1 marks the energy bins that are known; ``None``
    means the whole spectrum (all ones). Values outside the window are ignored (multiplied by 0).
    """

    dos: torch.Tensor
    mask: torch.Tensor
    window: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.dos.dim() != 2:
            raise ValueError(f"condition dos must be 2-D (rows, bins), got shape {tuple(self.dos.shape)}")
        if self.mask.shape != self.dos.shape[:1]:
            raise ValueError(f"condition mask shape {tuple(self.mask.shape)} does not match dos rows {self.dos.shape[0]}")
        if self.window is not None and self.window.shape != self.dos.shape:
            raise ValueError(f"window shape {tuple(self.window.shape)} != dos shape {tuple(self.dos.shape)}")

    def full_window(self) -> torch.Tensor:
        """The window as a float tensor (all ones when ``window`` is None)."""
        if self.window is None:
            return torch.ones_like(self.dos)
        return self.window.to(self.dos.dtype)

    def with_mask(self, mask: torch.Tensor) -> "DOSCondition":
        return replace(self, mask=mask)

    def with_window(self, window: torch.Tensor | None) -> "DOSCondition":
        return replace(self, window=window)

    def dropped(self) -> "DOSCondition":
        """The same condition with every row masked out (the unconditional input)."""
        return replace(self, mask=torch.zeros_like(self.mask))

    def to(self, device: torch.device | str) -> "DOSCondition":
        return DOSCondition(
            self.dos.to(device), self.mask.to(device), None if self.window is None else self.window.to(device)
        )


def condition_from_batch(batch, config: DenoiserConfig) -> DOSCondition | None:
    """The full condition stored in a batch: ``site_dos`` (site mode) or ``total_dos`` (total mode).

    The mask is ``batch.dos_mask`` when present (site mode), otherwise all ones; the window is None (full
    spectrum). Returns None for ``cond_mode='none'``.
    """
    if config.cond_mode == "none":
        return None
    key = "site_dos" if config.cond_mode == "site" else "total_dos"
    dos = getattr(batch, key, None)
    if dos is None:
        raise ValueError(f"cond_mode {config.cond_mode!r} needs batch.{key}, which this batch lacks")
    dos = dos.float()
    if dos.shape[-1] != config.cond_dim:
        raise ValueError(f"batch.{key} has {dos.shape[-1]} bins, the model expects {config.cond_dim}")
    mask = torch.ones(dos.shape[0], dtype=dos.dtype, device=dos.device)
    if config.cond_mode == "site" and getattr(batch, "dos_mask", None) is not None:
        mask = batch.dos_mask.to(dos.dtype)
    return DOSCondition(dos=dos, mask=mask)
