"""The crystal-level (``cond_mode: total``) condition of a sampling batch, and total-DOS targets.

A total-mode denoiser is conditioned on the per-atom total DOS of the whole crystal (states/eV/atom on
:data:`~dosmatgen.dos.grid.TOTAL_GRID`, 256 bins on [-10, 10] eV relative to E_F), scaled with the checkpoint's
``total`` scaler. :func:`resolve_total_target` reads such a target; :func:`total_condition` builds the
:class:`~dosmatgen.model.conditioning.DOSCondition` of a batch (one row per crystal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dosmatgen.checkpoint_compat import stored_scaler
from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.errors import InvalidRecordError
from dosmatgen.model.conditioning import DOSCondition


@dataclass(frozen=True)
class TotalTarget:
    """A total-DOS target: ``features`` (256,) float64, unscaled states/eV/atom on TOTAL_GRID."""

    name: str
    features: np.ndarray
    description: str = ""


def check_total_dos(values: np.ndarray, what: str, **where) -> np.ndarray:
    """(…, 256) float64 copy of ``values``; InvalidRecordError naming ``what`` for a wrong width, NaN or negatives."""
    d = np.asarray(values, dtype=np.float64)
    if d.ndim == 0 or d.shape[-1] != TOTAL_GRID.n:
        raise InvalidRecordError(f"{what} has {d.shape[-1] if d.ndim else 0} bins, expected {TOTAL_GRID.n} (TOTAL_GRID)", **where)
    if not np.all(np.isfinite(d)):
        raise InvalidRecordError(f"{what} contains NaN or infinite values", **where)
    if (d < 0).any():
        raise InvalidRecordError(f"{what} has negative values (min {d.min():.3g} states/eV/atom)", **where)
    return d


def resolve_total_target(spec: str) -> TotalTarget:
    """``STORE.zarr:ID_OR_INDEX`` (a structure's total DOS in a dataset store) or a ``.npy`` file of 256 values."""
    text = str(spec)
    if ".zarr:" in text:
        from dosmatgen.data.store import DatasetStore

        store_path, key = text.rsplit(":", 1)
        store = DatasetStore.open(store_path)
        ids = store.ids
        index = ids.index(key) if key in ids else (int(key) if key.lstrip("-").isdigit() else -1)
        if not 0 <= index < len(ids):
            raise InvalidRecordError(f"no structure {key!r} in the store", file=store_path)
        crystal = store.crystal(index)
        feats = check_total_dos(store.total_features(index), "total DOS", file=store_path, record=ids[index])
        return TotalTarget(f"{ids[index]}:total", feats, f"total DOS of {ids[index]} ({crystal.formula})")
    path = Path(text)
    if path.suffix != ".npy":
        raise InvalidRecordError("a total-DOS target is STORE.zarr:ID or a .npy file of 256 values (states/eV/atom on TOTAL_GRID)", file=text)
    if not path.is_file():
        raise InvalidRecordError("total-DOS target file not found", file=text)
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several kinds on a bad file
        raise InvalidRecordError(f"cannot read the total DOS ({type(exc).__name__}: {exc})", file=text) from None
    return TotalTarget(path.stem, check_total_dos(values.reshape(-1), "total DOS", file=text))


def total_scaler(scalers: dict, path, what: str = "checkpoint"):
    """The checkpoint's total-DOS scaler; CheckpointError naming ``path`` when it has none or the wrong width."""
    return stored_scaler(scalers, path, what, "total")


def total_condition(targets: torch.Tensor, num_atoms: torch.Tensor) -> DOSCondition:
    """The crystal-level condition of a batch of B crystals: ``targets`` scaled total DOS, (D,) for every crystal
    or (B, D) one per crystal -> DOSCondition with ``dos`` (B, D), ``mask`` (B,) ones, no window."""
    b = int(num_atoms.numel())
    targets = targets.float()
    if targets.dim() == 1:
        targets = targets.unsqueeze(0).expand(b, -1)
    if targets.shape[0] != b:
        raise ValueError(f"{targets.shape[0]} total-DOS rows for {b} crystals")
    return DOSCondition(dos=targets.contiguous(), mask=torch.ones(b), window=None)
