"""DOSSampler tokenization: round trip within the quantization error, [BG] placement, derived properties."""

from __future__ import annotations

import numpy as np
import pytest
from dos_sampler_helpers import synthetic_dos

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos.properties import ZERO_DOS_THRESHOLD, derived_properties_batch
from dosmatgen.dos_sampler.tokens import BG_TOKEN, VALUE_MAX, detokenize, gap_bins_mask, tokenize
from dosmatgen.errors import InvalidRecordError


def test_round_trip_within_quantization_error():
    dos = synthetic_dos(40)
    tok = tokenize(dos)
    back = detokenize(tok.tokens, tok.scale)
    bg = tok.tokens == BG_TOKEN
    err = np.abs(back - dos)
    assert np.all(err[~bg] <= tok.scale[:, None].repeat(256, 1)[~bg] / (2 * VALUE_MAX) + 1e-12)
    assert np.all(err[bg] <= ZERO_DOS_THRESHOLD)
    assert np.allclose(tok.scale, dos.max(axis=1))
    assert tok.tokens.min() >= 0 and tok.tokens.max() <= BG_TOKEN
    # the maximum bin of every row is token 1024 exactly
    assert np.all(tok.tokens[np.arange(40), dos.argmax(axis=1)] == VALUE_MAX)


def test_bg_tokens_are_the_gap_contiguous_with_fermi():
    row = np.ones(256)
    row[120:140] = 0.0  # gap around E_F (bins 127/128 inside)
    row[10:20] = 0.0  # an empty run far from E_F is not [BG]
    mask = gap_bins_mask(row[None])[0]
    assert np.flatnonzero(mask).tolist() == list(range(120, 140))
    metal = np.ones((1, 256))
    assert not gap_bins_mask(metal).any()


def test_derived_properties_survive_tokenization():
    dos = synthetic_dos(40, seed=3)
    tok = tokenize(dos)
    p0, p1 = derived_properties_batch(dos), derived_properties_batch(detokenize(tok.tokens, tok.scale))
    step = tok.scale / (2 * VALUE_MAX)
    assert np.all(np.abs(p0["dos_fermi"] - p1["dos_fermi"]) <= np.maximum(step, ZERO_DOS_THRESHOLD) + 1e-9)
    assert np.all(np.abs(p0["n_fermi"] - p1["n_fermi"]) <= 128 * np.maximum(step, ZERO_DOS_THRESHOLD) + 1e-9)
    np.testing.assert_allclose(p0["band_gap_hard"], p1["band_gap_hard"])
    # Algorithm 1: |delta c_j| <= j * K / 2048 for the j-th bin out from E_F, so |delta m_j| <= min(1, 10 j K / 2048)
    # over the J bins per side where either soft mask is still > 0 (J = mask sum / dE + 1 bounds their count)
    j = np.arange(1, 129)
    for i in range(dos.shape[0]):
        n_bins = int(np.ceil(max(p0["band_gap"][i], p1["band_gap"][i]) / TOTAL_GRID.step)) + 1
        bound = 2 * TOTAL_GRID.step * np.minimum(1.0, 10 * j[:n_bins] * step[i]).sum()
        assert abs(p0["band_gap"][i] - p1["band_gap"][i]) <= bound + 1e-5
    assert np.median(np.abs(p0["band_gap"] - p1["band_gap"])) < 0.01


@pytest.mark.parametrize(
    "bad, message",
    [(np.ones((2, 100)), "shape"), (-np.ones((1, 256)), "negative"), (np.zeros((1, 256)), "zero everywhere"),
     (np.full((1, 256), np.nan), "NaN")],
)
def test_bad_dos_rows_are_refused(bad, message):
    with pytest.raises(InvalidRecordError, match=message):
        tokenize(bad)


def test_detokenize_refuses_mask_tokens():
    with pytest.raises(InvalidRecordError, match="MASK"):
        detokenize(np.full((1, 256), BG_TOKEN + 1), np.ones(1))
