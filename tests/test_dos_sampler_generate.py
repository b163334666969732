"""DOSSampler generation on a tiny model trained in-test: guidance, priors, Algorithm 2, the public API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dos_sampler_helpers import tiny_sampler

from dosmatgen.dos.properties import TOTAL_DE, derived_properties_batch, integrated_dos_bins
from dosmatgen.dos_sampler import GeneratedDos, PropertyTargets, generate_dos
from dosmatgen.dos_sampler.checkpoint import load_dossampler, save_dossampler
from dosmatgen.dos_sampler.generate import generate_batch
from dosmatgen.dos_sampler.priors import build_prior, gap_bins, gap_interval
from dosmatgen.dos_sampler.rejection import within_tolerance
from dosmatgen.dos_sampler.sampler import SamplingConfig, sample_tokens
from dosmatgen.dos_sampler.guidance import Guidance
from dosmatgen.dos_sampler.tokens import BG_TOKEN, MASK_TOKEN, detokenize
from dosmatgen.errors import DosmatgenError

FAST = SamplingConfig(steps=8, corrector_steps=1, remask_fraction=0.1)


@pytest.fixture(scope="module")
def sampler():
    return tiny_sampler()


@pytest.fixture(scope="module")
def checkpoint(sampler, tmp_path_factory):
    return str(save_dossampler(tmp_path_factory.mktemp("ckpt") / "tiny.pt", sampler))


@pytest.mark.parametrize("target", [20.0, 80.0])
def test_guidance_moves_n_ef_toward_target(sampler, target):
    """Same seed, same K, same network: classifier guidance brings N(E_F) closer to the target, from below and above
    (the synthetic rows have N(E_F) 89 +- 50)."""
    log_k = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0] * 4))
    prior = torch.full((16, 256), MASK_TOKEN)
    forbid = torch.ones(16, 256, dtype=torch.bool)

    def error(scale: float) -> float:
        g = Guidance(sampler.regressor, {"n_fermi": target}, scale)
        tok = sample_tokens(sampler.network, log_k, prior, forbid, guidance=g, config=FAST, generator=torch.Generator().manual_seed(0))
        dos = detokenize(tok.numpy(), np.exp(log_k.numpy()))
        return float(np.abs(integrated_dos_bins(dos) - target).mean())

    plain, guided = error(0.0), error(16.0)
    assert guided < 0.95 * plain, (guided, plain)


def test_shape_guidance_moves_spectra_toward_the_reference(sampler):
    """Same seed, same K: shape guidance raises the cosine to a reference spectrum (the thermoelectric target)."""
    from dosmatgen.dos.properties import cosine_similarity
    from dosmatgen.dos_sampler.guidance import ShapeGuidance

    log_k = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0] * 4))
    prior = torch.full((16, 256), MASK_TOKEN)
    forbid = torch.ones(16, 256, dtype=torch.bool)
    e = np.arange(256)
    reference = np.exp(-0.5 * ((e - 60) / 8.0) ** 2) + 0.5 * np.exp(-0.5 * ((e - 200) / 12.0) ** 2)

    def cosine(scale: float) -> float:
        g = ShapeGuidance(reference, scale)
        tok = sample_tokens(sampler.network, log_k, prior, forbid, guidance=g, config=FAST, generator=torch.Generator().manual_seed(0))
        return float(cosine_similarity(detokenize(tok.numpy(), np.exp(log_k.numpy())), reference).mean())

    plain, guided = cosine(0.0), cosine(256.0)
    assert guided > plain + 0.05, (guided, plain)
    with pytest.raises(DosmatgenError, match="non-zero reference"):
        ShapeGuidance(np.zeros(256), 1.0)


def test_thermoelectric_targets_use_shape_guidance_and_zero_turns_it_off(sampler, monkeypatch):
    import dosmatgen.dos_sampler.generate as gen

    seen = []
    real = gen.sample_tokens

    def spy(*args, guidance=None, **kwargs):
        seen.append(guidance)
        return real(*args, guidance=guidance, **kwargs)

    monkeypatch.setattr(gen, "sample_tokens", spy)
    monkeypatch.setattr(sampler, "reference_te_dos", np.linspace(0.0, 1.0, 256))
    generate_batch(sampler, PropertyTargets(thermoelectric=True), 2, seed=0, sampling=FAST)
    generate_batch(sampler, PropertyTargets(thermoelectric=True), 2, seed=0, sampling=FAST, shape_guidance_scale=0.0)
    generate_batch(sampler, PropertyTargets(band_gap=1.0), 2, seed=0, sampling=FAST)
    assert [type(g).__name__ for g in seen[0]] == ["ShapeGuidance"] and seen[0][0].scale == gen.SHAPE_GUIDANCE_SCALE
    assert seen[1] is None and seen[2] is None


def test_band_gap_prior_fixes_the_gap_around_fermi(sampler):
    t = PropertyTargets(band_gap=2.0)
    dos, _ = generate_batch(sampler, t, 16, seed=1, sampling=FAST)
    n = gap_bins(2.0)
    a, b = gap_interval(n, "centred")
    assert a < 128 <= b - 1 and b - a == n
    assert np.all(dos[:, a:b] == 0)
    hard = derived_properties_batch(dos)["band_gap_hard"]
    assert np.all(hard >= n * TOTAL_DE - 1e-6)


def test_gap_placements():
    assert gap_interval(10, "vbm") == (128, 138)
    assert gap_interval(10, "centred") == (123, 133)
    with pytest.raises(DosmatgenError, match="placement"):
        gap_interval(10, "middle")


def test_metallic_targets_forbid_bg_everywhere():
    rng = np.random.default_rng(0)
    prior = build_prior(PropertyTargets(dos_ef=1.5), 3, rng)
    assert prior.forbid_bg.all() and np.all(prior.tokens == MASK_TOKEN)
    tcm = build_prior(PropertyTargets(tcm=1), 3, rng)
    assert tcm.forbid_bg.all()
    zero_runs = (tcm.tokens == 0).sum(axis=1)
    assert np.all(zero_runs * TOTAL_DE >= 3.1)
    assert np.all(np.flatnonzero(tcm.tokens[0] == 0) < 128)


def test_type1_tcm_prior_keeps_the_conduction_band_open_for_4_ev(sampler):
    from dosmatgen.dos.properties import ZERO_DOS_THRESHOLD

    k = np.array([0.5, 1.0, 3.0])
    prior = build_prior(PropertyTargets(tcm=1), 3, np.random.default_rng(0), scales=k)
    assert build_prior(PropertyTargets(tcm=2), 3, np.random.default_rng(0), scales=k).min_value is None
    for i in range(3):
        stop = int(np.flatnonzero(prior.tokens[i] == 0).max()) + 1  # first bin above the fixed zero run
        floor = prior.min_value[i]
        window = np.flatnonzero(floor > 0)
        assert window[0] == stop and window.size * TOTAL_DE > 4.0 and np.all(np.diff(window) == 1)
        assert floor[stop] / 1024 * k[i] > ZERO_DOS_THRESHOLD >= (floor[stop] - 1) / 1024 * k[i]

    class ZeroLovingNetwork(torch.nn.Module):  # a network that puts almost all mass on the value-0 token
        cfg = sampler.network.cfg

        def forward(self, tokens, log_k, lam=None):
            logits = torch.zeros(*tokens.shape, BG_TOKEN + 1)
            logits[..., 0] = 50.0
            return logits

    def band_widths(min_value):
        tok = sample_tokens(ZeroLovingNetwork(), torch.log(torch.as_tensor(k, dtype=torch.float32)),
                            torch.as_tensor(prior.tokens), torch.as_tensor(prior.forbid_bg), config=FAST,
                            generator=torch.Generator().manual_seed(0), min_value=min_value)
        return tok.numpy(), derived_properties_batch(detokenize(tok.numpy(), k))["conduction_band_width"]

    tok, widths = band_widths(torch.as_tensor(prior.min_value))
    assert np.all(tok >= prior.min_value) and np.all(widths > 4.0)
    _, closed = band_widths(None)  # without the floor the band closes right above the zero run
    assert np.all(closed < 4.0)


def test_sampler_keeps_prior_tokens_and_leaves_no_mask(sampler):
    prior = torch.full((4, 256), MASK_TOKEN)
    prior[:, 100:110] = 5
    prior[:, 120:136] = BG_TOKEN
    forbid = torch.ones(4, 256, dtype=torch.bool)
    forbid[:, 120:136] = False
    out = sample_tokens(sampler.network, torch.zeros(4), prior, forbid, config=FAST, generator=torch.Generator().manual_seed(0))
    assert torch.all(out[:, 100:110] == 5) and torch.all(out[:, 120:136] == BG_TOKEN)
    assert not (out == MASK_TOKEN).any()
    assert not (out[:, :120] == BG_TOKEN).any() and not (out[:, 136:] == BG_TOKEN).any()


@pytest.mark.slow
def test_generate_dos_api_orders_accepted_first(checkpoint):
    t = PropertyTargets(band_gap=2.0)
    out = generate_dos(t, 4, checkpoint=checkpoint, seed=0, max_rounds=2)
    assert isinstance(out, GeneratedDos)
    assert out.energies.shape == (256,) and out.dos.shape[1] == 256
    assert out.dos.shape[0] == out.accepted.shape[0]
    n_acc = int(out.accepted.sum())
    assert n_acc <= 4 and np.all(out.accepted[:n_acc]) and not np.any(out.accepted[n_acc:])
    ok = within_tolerance(out.properties["band_gap"], 2.0, 0.1, 0.1)
    assert np.array_equal(ok, out.accepted)
    assert set(out.properties) >= {"band_gap", "dos_ef", "n_ef", "scale_k"}
    again = generate_dos(t, 4, checkpoint=checkpoint, seed=0, max_rounds=2)
    np.testing.assert_array_equal(again.dos, out.dos)


def test_generate_dos_refuses_bad_arguments(checkpoint, tmp_path):
    with pytest.raises(DosmatgenError, match="n must be"):
        generate_dos(PropertyTargets(), 0, checkpoint=checkpoint)
    with pytest.raises(DosmatgenError, match="not found"):
        generate_dos(PropertyTargets(), 1, checkpoint=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(DosmatgenError, match="not a DOSSampler checkpoint"):
        generate_dos(PropertyTargets(), 1, checkpoint=str(bad))


def test_bundled_name_resolves():
    from dosmatgen.checkpoint_paths import resolve_checkpoint

    path = resolve_checkpoint("bundled:dossampler-small")
    assert path.is_file() and path.stat().st_size < 7 * 2**20
    loaded = load_dossampler("bundled:dossampler-small")
    assert loaded.regressor is not None and loaded.reference_te_id == "rocksalt-PbTe"
    assert loaded.gap_placement == "centred"


def test_checkpoint_round_trip(sampler, checkpoint):
    loaded = load_dossampler(checkpoint)
    tokens = torch.randint(0, 1026, (2, 256))
    log_k = torch.zeros(2)
    with torch.no_grad():
        a, b = sampler.network(tokens, log_k), loaded.network(tokens, log_k)
    assert torch.allclose(a, b, atol=0.05)
    np.testing.assert_allclose(loaded.k_values, sampler.k_values, rtol=1e-6)
    assert loaded.regressor is not None and loaded.reference_te_id == "synthetic-1"
