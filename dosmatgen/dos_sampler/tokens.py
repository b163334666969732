"""Tokenization of a per-atom total DOS for the DOSSampler (paper Section 4.1).

A DOS row d (256 bins on TOTAL_GRID, states/eV/atom) becomes 256 tokens and one scale K = max(d) > 0:

* bins of the band gap contiguous with E_F (the empty runs from bin 127 downward and from bin 128 upward,
  "empty" meaning d <= ``threshold``, as in :func:`dosmatgen.dos.properties.band_layout`) get ``BG_TOKEN``;
* every other bin gets the value token round(d / K * 1024) in 0..1024.

Decoding maps a value token v to v / 1024 * K and ``BG_TOKEN`` to 0. The round trip error is at most K / 2048
for value bins and at most ``threshold`` for [BG] bins. ``MASK_TOKEN`` only exists inside the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos.properties import ZERO_DOS_THRESHOLD
from dosmatgen.errors import InvalidRecordError

#: Value tokens 0..1024 encode d / K in [0, 1] in steps of 1/1024.
N_VALUE_TOKENS = 1025
VALUE_MAX = N_VALUE_TOKENS - 1
#: Band-gap token: bins of the gap that contains E_F.
BG_TOKEN = N_VALUE_TOKENS
#: Number of tokens the network predicts (values and [BG]).
N_OUTPUT_TOKENS = N_VALUE_TOKENS + 1
#: Absorbing mask token of the masked diffusion.
MASK_TOKEN = N_OUTPUT_TOKENS
VOCAB_SIZE = MASK_TOKEN + 1
#: Sequence length: TOTAL_GRID bins.
SEQ_LEN = TOTAL_GRID.n


@dataclass(frozen=True)
class TokenizedDos:
    """``tokens`` (n, 256) int64 in 0..1025 and ``scale`` (n,) float64, the per-sample constant K."""

    tokens: np.ndarray
    scale: np.ndarray


def _as_rows(dos: np.ndarray) -> np.ndarray:
    d = np.asarray(dos, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != SEQ_LEN:
        raise InvalidRecordError(f"DOSSampler tokenization takes (n, {SEQ_LEN}) per-atom total DOS rows, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        bad = int(np.flatnonzero(~np.isfinite(d).all(axis=1))[0])
        raise InvalidRecordError("DOS contains NaN or infinite values", record=bad)
    if np.any(d < 0):
        bad = int(np.flatnonzero((d < 0).any(axis=1))[0])
        raise InvalidRecordError(f"DOS has negative values (min {d[bad].min():.3g} states/eV/atom)", record=bad)
    return d


def gap_bins_mask(dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD) -> np.ndarray:
    """(n, 256) bool: bins of the empty runs contiguous with E_F (from bin 127 down, from bin 128 up)."""
    d = _as_rows(dos)
    half = SEQ_LEN // 2
    occupied = d > threshold
    left_seen = np.logical_or.accumulate(occupied[:, :half][:, ::-1], axis=1)[:, ::-1]
    right_seen = np.logical_or.accumulate(occupied[:, half:], axis=1)
    return np.concatenate([~left_seen, ~right_seen], axis=1)


def scale_constants(dos: np.ndarray) -> np.ndarray:
    """K = max over bins of each row (n,). Raises for an all-zero row (nothing to scale)."""
    d = _as_rows(dos)
    k = d.max(axis=1)
    if np.any(k <= 0):
        raise InvalidRecordError("DOS row is zero everywhere; it has no scale constant K", record=int(np.flatnonzero(k <= 0)[0]))
    return k


def tokenize(dos: np.ndarray, threshold: float = ZERO_DOS_THRESHOLD) -> TokenizedDos:
    """Tokens and K of per-atom total DOS rows (n, 256)."""
    d = _as_rows(dos)
    k = scale_constants(d)
    values = np.clip(np.rint(d / k[:, None] * VALUE_MAX), 0, VALUE_MAX).astype(np.int64)
    tokens = np.where(gap_bins_mask(d, threshold), BG_TOKEN, values)
    return TokenizedDos(tokens=tokens, scale=k)


def detokenize(tokens: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-atom DOS (n, 256) float64 from value/[BG] tokens (n, 256) and K (n,)."""
    t = np.asarray(tokens)
    k = np.asarray(scale, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != SEQ_LEN or k.shape != (t.shape[0],):
        raise InvalidRecordError(f"detokenize takes tokens (n, {SEQ_LEN}) and scale (n,), got {t.shape} and {k.shape}")
    if np.any((t < 0) | (t > BG_TOKEN)):
        raise InvalidRecordError("tokens outside 0..1025 (a [MASK] left in a finished sample?)")
    values = np.where(t == BG_TOKEN, 0, t).astype(np.float64)
    return values / VALUE_MAX * k[:, None]
