"""The library's own pieces behind the stage contracts: the diffusion sampler and the batched MLFF relaxer."""

from __future__ import annotations

import numpy as np
import pytest
from screen_helpers import small_store, synthetic_training_set, tiny_run_config

from dosmatgen.screen.baseline import load_random_sampler
from dosmatgen.screen.stages import FilterConfig, TargetContext, relax_shard, sample_shard


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from dosmatgen.dos.scaler import PerBinStandardScaler
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.trainer import train

    out = tmp_path_factory.mktemp("ckpt")
    train_set, _ = synthetic_training_set(n=8)
    site = np.concatenate([d.site_dos.numpy() for d in train_set])
    cfg = RunConfig.from_dict(tiny_run_config())
    result = train(cfg, train_set, None, out, epochs=1, progress=False,
                   scalers={"site": PerBinStandardScaler().fit(site)})
    return str(result.last_checkpoint)


def test_diffusion_sampler_fills_a_shard_reproducibly(tmp_path, tiny_checkpoint):
    from dosmatgen.screen.library_stages import load_diffusion_sampler

    sampler = load_diffusion_sampler(tiny_checkpoint)
    target = TargetContext("t0", np.abs(np.sin(np.linspace(0, 6, 400))) + 0.1)
    a = sampler(target, np.array([2, 3, 2]), seed=5)
    b = sampler(target, np.array([2, 3, 2]), seed=5)
    c = sampler(TargetContext("t0", None), np.array([2, 3, 2]), seed=5)  # unconditioned
    assert len(a) == 3 and [x.num_atoms for x in a if x is not None] == [n for x, n in zip(a, [2, 3, 2]) if x is not None]
    assert all((x is None and y is None) or x.equals(y) for x, y in zip(a, b))
    assert len(c) == 3
    store = small_store(tmp_path, n=4, shard_size=4)
    assert sample_shard(store, "t0", 0, sampler) == 4


def test_mlff_relaxer_on_emt_writes_a_shard(tmp_path):
    from dosmatgen.screen.library_stages import load_mlff_relaxer

    store = small_store(tmp_path / "run", n=4, shard_size=4)
    sample_shard(store, "t0", 0, load_random_sampler(["Al", "Cu"], 14.0, 1.5))
    relaxer = load_mlff_relaxer("emt", fmax=0.1, max_steps=10, references_cache=str(tmp_path / "refs.json"))
    counts = relax_shard(store, "t0", 0, relaxer, FilterConfig(require_converged=False, min_distance=1.0))
    assert counts["relaxed"] == 4 and counts["failed"] == 0
    t = store.target("t0")
    e0, e1, fe = (t.column(f"relax/{k}") for k in ("energy_unrelaxed", "energy_relaxed", "formation_energy"))
    assert np.isfinite(e1).all() and (e1 <= e0 + 1e-6).all() and np.isfinite(fe).all()


def test_surrogate_scorer_prefers_the_structure_whose_dos_matches(tmp_path):
    from surrogate_fixture_helpers import site_row, synthetic_crystals, write_synthetic_dos_store

    from dosmatgen.screen.library_stages import load_surrogate_scorer
    from dosmatgen.surrogate.config import SurrogateTrainConfig
    from dosmatgen.surrogate.train import train_surrogate

    store = write_synthetic_dos_store(tmp_path / "syn.zarr")
    cfg = SurrogateTrainConfig(preset="tiny", epochs=25, batch_size=8, lr=3e-3, seed=0, num_threads=1)
    ckpt = train_surrogate(store, tmp_path / "sur", cfg).checkpoint
    scorer = load_surrogate_scorer(str(ckpt), site=0)
    crystals = synthetic_crystals(6)
    k = 4  # the target is site 0 of crystal k, computed by the same rule as the training data
    target = TargetContext("t", site_row(int(crystals[k].atomic_numbers[0]), crystals[k].lattice[0, 0]))
    scores = scorer(crystals, target, np.zeros(6))
    assert scores.shape == (6,) and np.isfinite(scores).all()
    assert int(np.argmin(scores)) in [i for i, c in enumerate(crystals) if c.atomic_numbers[0] == crystals[k].atomic_numbers[0]]
