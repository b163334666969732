"""PerBinStandardScaler: fit, exact inverse, numpy and torch, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr

from dosmatgen.dos.scaler import DEFAULT_EPS, PerBinStandardScaler, fit_scaler


@pytest.fixture
def rows() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 0.7, size=(500, 64)) * np.linspace(0.1, 5, 64)
    x[:, :5] = 0.0  # bins that are always empty in training
    return x


def test_fit_statistics_and_standardisation(rows):
    s = PerBinStandardScaler().fit(rows)
    np.testing.assert_allclose(s.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.std, rows.std(axis=0), rtol=1e-12)
    z = s.transform(rows)
    np.testing.assert_allclose(z[:, 5:].mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(z[:, 5:].std(axis=0), rows[:, 5:].std(axis=0) / (rows[:, 5:].std(axis=0) + DEFAULT_EPS), rtol=1e-12)
    assert np.all(z[:, :5] == 0) and np.all(np.isfinite(z))


def test_inverse_is_exact_in_float64(rows):
    s = PerBinStandardScaler().fit(rows[:300])
    held_out = rows[300:]
    back = s.inverse_transform(s.transform(held_out))
    np.testing.assert_allclose(back, held_out, rtol=1e-12, atol=1e-12)
    z = np.random.default_rng(2).normal(size=(7, 64))
    np.testing.assert_allclose(s.transform(s.inverse_transform(z)), z, rtol=1e-10, atol=1e-10)


def test_partial_fit_equals_fit(rows):
    full = PerBinStandardScaler().fit(rows)
    streamed = fit_scaler([rows[:1], rows[1:170], rows[170:171], rows[171:]])
    np.testing.assert_allclose(streamed.mean, full.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(streamed.std, full.std, rtol=1e-10, atol=1e-15)
    assert streamed.n_samples == full.n_samples == 500


def test_torch_tensors_match_numpy(rows):
    s = PerBinStandardScaler().fit(rows)
    t64 = torch.tensor(rows[:10], dtype=torch.float64)
    z = s.transform(t64)
    assert isinstance(z, torch.Tensor) and z.dtype == torch.float64
    np.testing.assert_allclose(z.numpy(), s.transform(rows[:10]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.inverse_transform(z), t64, rtol=1e-12, atol=1e-12)
    t32 = torch.tensor(rows[:10, :], dtype=torch.float32, requires_grad=True)
    z32 = s.transform(t32)
    assert z32.dtype == torch.float32
    z32.sum().backward()  # differentiable for guidance
    torch.testing.assert_close(t32.grad[0], torch.tensor(1 / (s.std + s.eps), dtype=torch.float32))
    # batched (B, atoms, bins) shapes broadcast over the last axis
    assert s.inverse_transform(torch.zeros(3, 4, 64)).shape == (3, 4, 64)


def test_save_as_dict_json_and_torch_checkpoint(rows, tmp_path):
    s = PerBinStandardScaler().fit(rows)
    d = json.loads(json.dumps(s.to_dict()))
    r = PerBinStandardScaler.from_dict(d)
    assert np.array_equal(r.mean, s.mean) and np.array_equal(r.std, s.std) and r.eps == s.eps
    torch.save({"scaler": s.to_dict()}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    r2 = PerBinStandardScaler.from_dict(loaded["scaler"])
    assert np.array_equal(r2.transform(rows), s.transform(rows))


def test_save_as_arrays_in_a_zarr_group(rows, tmp_path):
    s = PerBinStandardScaler().fit(rows)
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w").create_group("scalers/site")
    for key, value in s.to_arrays().items():
        g.create_array(key, data=value)
    back = PerBinStandardScaler.from_arrays(zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["scalers/site"])
    assert np.array_equal(back.mean, s.mean) and np.array_equal(back.std, s.std)
    assert back.eps == s.eps and back.n_samples == 500


def test_misuse_is_reported(rows):
    with pytest.raises(RuntimeError, match="not fitted"):
        PerBinStandardScaler().transform(rows)
    s = PerBinStandardScaler().fit(rows)
    with pytest.raises(ValueError, match="bins"):
        s.transform(rows[:, :10])
    with pytest.raises(ValueError, match="NaN"):
        PerBinStandardScaler().fit(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="lack"):
        PerBinStandardScaler.from_arrays({"mean": np.zeros(3)})
    with pytest.raises(ValueError, match="not a PerBinStandardScaler"):
        PerBinStandardScaler.from_dict({"kind": "other", "mean": [0.0], "std": [1.0]})
