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
    assert len(a) == 3 and any(x is not None for x in a)  # the checks below would pass on all-None shards
    assert [x.num_atoms for x in a if x is not None] == [n for x, n in zip(a, [2, 3, 2]) if x is not None]
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


def test_relax_failures_are_recorded_by_reason(tmp_path):
    """The run store keeps WHY a relaxation failed: a flag bit per reason next to RELAX_FAILED, a breakdown in
    the summary, and the failure kinds per shard in the manifest."""
    from dosmatgen.crystal import Crystal
    from dosmatgen.runstore.flags import Flag, describe_flags
    from dosmatgen.screen.library_stages import load_mlff_relaxer
    from dosmatgen.screen.summary import flag_reasons

    def sampler(target, num_atoms, seed):
        out = []
        for i, n in enumerate(num_atoms):
            frac = (np.arange(int(n))[:, None] * np.array([0.5, 0.37, 0.29])) % 1.0
            z = np.full(int(n), 29)
            if i == 1:
                z[:] = 26  # Fe: EMT has no parameters for it
            if i == 2:
                frac = np.vstack([np.zeros((1, 3)), np.full((int(n) - 1, 3), 0.01)])  # 0.07 A apart
            out.append(Crystal(z, frac, np.eye(3) * 2.6 * int(n) ** (1 / 3)))
        return out

    store = small_store(tmp_path / "run", n=4, shard_size=4)  # 2, 3, 2, 3 atoms
    t = store.target("t0")
    sample_shard(store, "t0", 0, sampler)
    relaxer = load_mlff_relaxer("emt", fmax=0.1, max_steps=5, references_cache=str(tmp_path / "refs.json"))
    relax_shard(store, "t0", 0, relaxer, FilterConfig(require_converged=False, min_distance=1.0))
    flags = t.column("relax/flags")
    assert flags[1] == Flag.RELAX_FAILED | Flag.UNSUPPORTED_ELEMENTS
    assert "relaxation failed: elements not supported by the MLFF" in describe_flags(int(flags[1]))
    assert flags[2] == Flag.RELAX_FAILED | Flag.OVERLAPPING_INPUT
    reasons = flag_reasons(store)["t0"]
    assert reasons["relaxation failed"] == sum(bool(f & Flag.RELAX_FAILED) for f in flags)
    assert reasons["relaxation failed: elements not supported by the MLFF"] == 1
    kinds = store.manifest.done_info("relax", "t0", 0)["failure_kinds"]
    assert kinds["unsupported_elements"] == 1 and sum(kinds.values()) == reasons["relaxation failed"]


def test_element_without_reference_is_flagged_not_fatal(tmp_path, monkeypatch):
    """A candidate the MLFF relaxes but whose formation energy has no elemental reference (the bundled model can
    sample e.g. Ra, Z = 88, beyond the 1..83 reference set) is flagged NO_FORMATION_ENERGY; the shard completes."""
    import dosmatgen.relax.formation_energy as fe_module
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.runstore.flags import Flag
    from dosmatgen.screen.library_stages import load_mlff_relaxer

    real = fe_module.formation_energy_per_atom

    def no_reference_for_first(crystal, energy, references):
        if crystal.metadata.get("row") == 0:
            raise InvalidRecordError("no elemental reference for Z=88: the reference set covers Z = 1..83")
        return real(crystal, energy, references)

    monkeypatch.setattr(fe_module, "formation_energy_per_atom", no_reference_for_first)
    store = small_store(tmp_path / "run", n=4, shard_size=4)
    sample_shard(store, "t0", 0, load_random_sampler(["Al", "Cu"], 14.0, 1.5))
    relaxer = load_mlff_relaxer("emt", fmax=0.1, max_steps=10, references_cache=str(tmp_path / "refs.json"))
    counts = relax_shard(store, "t0", 0, relaxer,
                         FilterConfig(require_converged=False, min_distance=1.0, max_formation_energy=10.0))
    assert counts["relaxed"] == 4 and counts["failed"] == 0
    flags = store.target("t0").column("relax/flags")
    assert flags[0] == Flag.NO_FORMATION_ENERGY and not (flags[1:] & Flag.NO_FORMATION_ENERGY).any()
