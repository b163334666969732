"""DOS conditioning of the denoiser: masks, energy windows, total-DOS mode and classifier-free training dropout."""

from __future__ import annotations

import pytest
import torch

from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.model import CSPNetDenoiser, DenoiserConfig, DOSCondition
from dosmatgen.training.condition_dropout import ConditionDropoutConfig, apply_condition_dropout, random_windows


pytestmark = pytest.mark.usefixtures("one_torch_thread")


NUM_ATOMS = torch.tensor([3, 2, 4])
BATCH = torch.repeat_interleave(torch.arange(3), NUM_ATOMS)


def _state(seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = int(NUM_ATOMS.sum())
    return dict(
        atom_types=torch.randn(n, 100, generator=gen),
        frac_coords=torch.rand(n, 3, generator=gen),
        lattice=torch.eye(3) * 4 + torch.randn(3, 3, 3, generator=gen),
        t=torch.tensor([5, 500, 999]),
        batch=BATCH,
    )


def _model(**kw) -> CSPNetDenoiser:
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny(**kw)).eval()
    # a non-zero condition projection bias makes "mask 0 == unconditional" a real check
    torch.nn.init.normal_(model.cond_projection.bias)
    return model


def _assert_same(a, b):
    torch.testing.assert_close(a.coord_score, b.coord_score, rtol=0, atol=0)
    torch.testing.assert_close(a.lattice_eps, b.lattice_eps, rtol=0, atol=0)
    torch.testing.assert_close(a.type_eps, b.type_eps, rtol=0, atol=0)


def _differs(a, b) -> bool:
    return not torch.allclose(a.type_eps, b.type_eps)


@pytest.mark.parametrize("mode,rows,bins", [("site", 9, 400), ("total", 3, 256)])
def test_zero_mask_equals_unconditional(mode, rows, bins):
    model = _model(cond_mode=mode)
    dos = torch.randn(rows, bins)
    s = _state()
    uncond = model(**s, cond=None)
    masked = model(**s, cond=DOSCondition(dos, torch.zeros(rows)))
    _assert_same(masked, uncond)
    conditioned = model(**s, cond=DOSCondition(dos, torch.ones(rows)))
    assert _differs(conditioned, uncond)


def test_site_mask_selects_atoms():
    model = _model()
    s = _state()
    gen = torch.Generator().manual_seed(1)
    dos = torch.randn(9, 400, generator=gen)
    mask = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0, 0])  # atom 0 of crystal 0, atom 0 of crystal 1
    base = model(**s, cond=DOSCondition(dos, mask))
    other = dos.clone()
    other[mask == 0] = torch.randn(int((mask == 0).sum()), 400, generator=gen)
    _assert_same(model(**s, cond=DOSCondition(other, mask)), base)  # unconditioned atoms' DOS is ignored
    # crystal 2 has no conditioned atom: its outputs equal the unconditional model's
    uncond = model(**s, cond=None)
    torch.testing.assert_close(base.type_eps[5:], uncond.type_eps[5:], rtol=0, atol=0)
    torch.testing.assert_close(base.lattice_eps[2], uncond.lattice_eps[2], rtol=0, atol=0)
    assert not torch.allclose(base.type_eps[:3], uncond.type_eps[:3])


@pytest.mark.parametrize("mode,rows", [("site", 9), ("total", 3)])
def test_window_hides_the_rest_of_the_spectrum(mode, rows):
    model = _model(cond_mode=mode)
    grid_n = 400 if mode == "site" else 256
    energies = torch.linspace(-10, 10, grid_n)
    window = ((energies >= -2) & (energies <= 2)).float().expand(rows, -1)
    gen = torch.Generator().manual_seed(2)
    dos = torch.randn(rows, grid_n, generator=gen)
    s = _state()
    base = model(**s, cond=DOSCondition(dos, torch.ones(rows), window))
    outside = dos + (1 - window) * torch.randn(rows, grid_n, generator=gen)
    _assert_same(model(**s, cond=DOSCondition(outside, torch.ones(rows), window)), base)
    inside = dos + window * torch.randn(rows, grid_n, generator=gen)
    assert _differs(model(**s, cond=DOSCondition(inside, torch.ones(rows), window)), base)
    # the window itself is an input: the same values under the full window give a different prediction
    assert _differs(model(**s, cond=DOSCondition(dos * window, torch.ones(rows))), base)


def test_total_mode_broadcasts_to_all_atoms():
    model = _model(cond_mode="total")
    s = _state()
    dos = torch.randn(3, 256)
    base = model(**s, cond=DOSCondition(dos, torch.ones(3)))
    changed = dos.clone()
    changed[1] += 1.0
    out = model(**s, cond=DOSCondition(changed, torch.ones(3)))
    same = torch.isclose(out.type_eps, base.type_eps).all(-1)
    assert same.tolist() == [True] * 3 + [False] * 2 + [True] * 4


def test_bad_condition_inputs():
    model = _model()
    s = _state()
    with pytest.raises(ValueError, match="bins"):
        model(**s, cond=DOSCondition(torch.randn(9, 256), torch.ones(9)))
    with pytest.raises(ValueError, match="mask shape"):
        DOSCondition(torch.randn(9, 400), torch.ones(8))
    torch.manual_seed(0)
    plain = CSPNetDenoiser(DenoiserConfig.tiny(cond_mode="none"))
    assert plain.cond_projection is None
    with pytest.raises(ValueError, match="cond_mode='none'"):
        plain(**s, cond=DOSCondition(torch.randn(9, 400), torch.ones(9)))


def test_condition_dropout_fractions_and_structure():
    gen = torch.Generator().manual_seed(0)
    num = torch.randint(2, 9, (4000,), generator=gen)
    batch = torch.repeat_interleave(torch.arange(4000), num)
    n = int(num.sum())
    cond = DOSCondition(torch.randn(n, 400, generator=gen), torch.ones(n))
    cfg = ConditionDropoutConfig(p_uncond=0.2, p_partial_sites=0.25, p_window=0.3)
    out = apply_condition_dropout(cond, batch, 4000, "site", SITE_GRID, cfg, gen)
    kept = torch.zeros(4000).index_add_(0, batch, out.mask)
    dropped = kept == 0
    full = kept == num.float()
    partial = ~dropped & ~full
    assert dropped.float().mean().item() == pytest.approx(0.2, abs=0.025)
    # partial crystals: 25 % of the kept ones, minus those whose random subset happened to be everything
    assert 0.8 * 0.25 * 0.5 < partial.float().mean().item() < 0.8 * 0.25 + 0.02
    # windows are per crystal, contiguous, and shared by the crystal's sites
    win = out.window
    windowed_rows = win.sum(-1) < 400
    crystal_windowed = torch.zeros(4000).index_add_(0, batch, windowed_rows.float()) > 0
    assert crystal_windowed.float().mean().item() == pytest.approx(0.3, abs=0.03)
    first = torch.cumsum(num, 0) - num
    torch.testing.assert_close(win, win[first][batch])
    diffs = (win[:, 1:] - win[:, :-1]).abs().sum(-1)
    assert diffs.max() <= 2
    widths = win[windowed_rows].sum(-1) * SITE_GRID.step
    assert widths.min() >= 1.0 - 2 * SITE_GRID.step and widths.max() <= 10.0 + SITE_GRID.step
    torch.testing.assert_close(out.dos, cond.dos)


def test_condition_dropout_total_mode_and_determinism():
    cond = DOSCondition(torch.randn(1000, 256), torch.ones(1000))
    batch = torch.arange(1000)
    cfg = ConditionDropoutConfig(p_uncond=0.5, p_partial_sites=1.0, p_window=0.0)
    a = apply_condition_dropout(cond, batch, 1000, "total", SITE_GRID, cfg, torch.Generator().manual_seed(4))
    b = apply_condition_dropout(cond, batch, 1000, "total", SITE_GRID, cfg, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.mask, b.mask)
    assert set(a.mask.tolist()) <= {0.0, 1.0}
    assert a.mask.mean().item() == pytest.approx(0.5, abs=0.06)
    assert bool((a.window == 1).all())


def test_random_windows_stay_on_grid():
    w = random_windows(500, SITE_GRID, 1.0, 4.0, torch.Generator().manual_seed(0))
    assert w.shape == (500, 400)
    width = w.sum(-1) * SITE_GRID.step
    assert width.min() > 0.8 and width.max() < 4.2
