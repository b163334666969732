"""``dosmatgen design`` end to end on a tiny total-DOS generator: the dataset source, a fake of the DOS generator,
--like, bad targets (clear error, non-zero exit, nothing written), and ``dosmatgen sample`` on a total-DOS model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from design_fixture_helpers import install_fake_dos_sampler, train_tiny_total

from dosmatgen.cli.main import main

FAST = ["--set", "generator.backend=inline", "--set", "relax.backend=inline", "--set", "dft.backend=inline",
        "--set", "relax.loader=design_fixture_helpers:load_identity_relaxer", "--set", "relax.options={}",
        "--set", "run.shard_size=4", "--set", "run.top_k=3", "--set", "relax.filter.min_distance=0.0",
        "--set", "relax.filter.volume_per_atom=[0.0,1.0e9]", "--set", "relax.filter.max_formation_energy=null"]


@pytest.fixture(scope="module")
def tiny_total(tmp_path_factory):
    return train_tiny_total(tmp_path_factory.mktemp("tiny-total"))


def _design(args, tiny_total, out):
    return main(["design", *args, "--set", f"generator.checkpoint={tiny_total}", *FAST, "--out", str(out)])


def _summary(out):
    return json.loads((out / "summary" / "summary.json").read_text())


def test_design_with_the_dataset_source_writes_the_screen_summary(tmp_path, tiny_total, capsys):
    import zarr

    from dosmatgen.dos.property_targets import PropertyTargets, meets_targets

    out = tmp_path / "run"
    assert _design(["--band-gap", "2.0", "--source", "dataset", "--n", "6"], tiny_total, out) == 0
    s = _summary(out)
    assert s["counts"]["design"]["planned"] == 6 and s["counts"]["design"]["sampled"] == 6
    assert s["design"]["conditioning_dos"] == 6 and s["design"]["conditioning_meet_targets"] == 6
    assert s["design"]["source"]["source"] == "dataset" and s["design"]["source"]["matching"] >= 1
    assert (out / "summary" / "design_dos.png").is_file() and (out / "summary" / "ranked.csv").is_file()
    assert "design_dos.png" in s["plots"] and len(s["cifs"]) == s["counts"]["design"]["selected"] > 0
    g = zarr.open_group(str(out / "design" / "conditioning.zarr"), mode="r")
    dos = g["dos"][...]
    assert dos.shape == (6, 256) and meets_targets(dos, PropertyTargets(band_gap=2.0)).all()
    assert "surrogate total DOS meets the targets" in capsys.readouterr().out


def test_design_with_a_fake_dos_generator_conditions_on_its_accepted_rows(tmp_path, tiny_total, monkeypatch):
    calls: list = []
    install_fake_dos_sampler(monkeypatch, calls)
    out = tmp_path / "run"
    assert _design(["--band-gap", "1.0", "--n", "8", "--source", "dossampler"], tiny_total, out) == 0
    assert len(calls) == 1 and calls[0]["n"] == 8 and calls[0]["targets"].band_gap == 1.0
    s = _summary(out)
    assert s["design"]["source"] == {"source": "dossampler", "checkpoint": "bundled:dossampler-small", "generated": 8, "accepted": 4}
    assert s["counts"]["design"]["planned"] == 4  # only the accepted rows become candidates
    assert s["design"]["conditioning_meet_targets"] == 4


def test_missing_dos_generator_is_a_clear_error(tmp_path, tiny_total, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "dosmatgen.dos_sampler", None)  # import fails as when the package is absent
    out = tmp_path / "run"
    assert _design(["--band-gap", "1.0", "--source", "dossampler"], tiny_total, out) == 2
    assert "--source dossampler needs the DOS generator" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--band-gap", "-1"], "band_gap (--band-gap) must be >= 0"),
    (["--band-gap", "2.0", "--dos-ef", "1.0"], "band_gap=2.0 and dos_ef=1.0 (--band-gap, --dos-ef)"),
    (["--tcm", "1", "--thermoelectric"], "thermoelectric and tcm (--thermoelectric, --tcm)"),
    ([], "no target: give at least one of --band-gap"),
    (["--n-ef", "2.0", "--n", "0"], "--n must be >= 1"),
    (["--band-gap", "50", "--source", "dataset"], "no train-split crystal"),
    (["--like", "missing.cif"], "reference structure file not found"),
    (["--band-gap", "1.0", "--set", "generator.sampling_steps=100"], "--sampling-steps must lie in 1..20"),
])
def test_bad_targets_exit_non_zero_and_write_nothing(tmp_path, tiny_total, capsys, args, message):
    out = tmp_path / "run"
    assert _design(args, tiny_total, out) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_like_a_dataset_crystal_uses_its_dft_dos(tmp_path, tiny_total):
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.io.structure_files import write_cif

    store = DatasetStore.open(bundled_dataset_path())
    i = int(store.split_indices("test")[0])
    ref = tmp_path / "ref.cif"
    write_cif(ref, [store.crystal(i)], ["ref"])
    out = tmp_path / "run"
    assert _design(["--like", str(ref), "--n", "4"], tiny_total, out) == 0
    like = _summary(out)["design"]["like"]
    assert like["how"] == "dataset" and like["reference"] == f"ref={store.ids[i]}"
    import zarr

    dos = zarr.open_group(str(out / "design" / "conditioning.zarr"), mode="r")["dos"][...]
    np.testing.assert_allclose(dos, np.repeat(store.total_features(i)[None], 4, axis=0), rtol=1e-6)


def test_like_an_unknown_crystal_uses_the_surrogate(tmp_path):
    from dosmatgen.crystal import Crystal
    from dosmatgen.design.like import reference_dos
    from dosmatgen.design.total_dos import SurrogateTotalDOS
    from dosmatgen.io.structure_files import write_cif

    crystal = Crystal(np.array([3, 9]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 3.17)  # LiF, CsCl-type
    ref = tmp_path / "lif.cif"
    write_cif(ref, [crystal], ["lif"])
    got = reference_dos(ref)
    assert got.how == "surrogate"
    np.testing.assert_allclose(got.dos, SurrogateTotalDOS("bundled:surrogate-small")([crystal])[0])


def test_sample_cli_accepts_a_total_dos_checkpoint(tmp_path, tiny_total):
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.store import DatasetStore

    store = DatasetStore.open(bundled_dataset_path())
    target = f"{bundled_dataset_path()}:{store.ids[0]}"
    out = tmp_path / "sample"
    assert main(["sample", "--checkpoint", tiny_total, "--target", target, "--n", "3", "--num-atoms", "2", "--out", str(out)]) == 0
    npy = tmp_path / "flat.npy"
    np.save(npy, np.full(256, 0.3))
    assert main(["sample", "--checkpoint", tiny_total, "--target", str(npy), "--n", "2", "--num-atoms", "2", "--out", str(tmp_path / "s2")]) == 0
    assert main(["sample", "--checkpoint", tiny_total, "--target", str(npy), "--window", "-1", "1", "--out", str(tmp_path / "s3")]) == 2


def test_the_shipped_total_dos_generator_loads_and_is_small():
    from dosmatgen.checkpoint_paths import TOTAL_DOS_GENERATOR, resolve_checkpoint
    from dosmatgen.training.checkpoint import load_checkpoint

    path = resolve_checkpoint(TOTAL_DOS_GENERATOR)
    assert path.name == "dosmatgen-small-total.pt" and path.stat().st_size < 8 * 2**20
    ckpt = load_checkpoint(path)
    assert ckpt.model_config.cond_mode == "total" and ckpt.model_config.cond_dim == 256 and "total" in ckpt.scalers
    assert ckpt.optimizer_state is None  # inference-only


def test_design_sends_only_dft_top_k_of_the_selection_to_dft(tmp_path, tiny_total, monkeypatch):
    """run.top_k = 3 candidates are selected and reported; --dft-top-k 1 sends only the best one to the DFT stage,
    run on the screen's DFT executor (inline here; submitit in the cluster test)."""
    from dosmatgen.runstore import RunStore

    out = tmp_path / "run"
    assert _design(["--band-gap", "2.0", "--source", "dataset", "--n", "6", "--dft-top-k", "1",
                    "--set", "dft.loader=screen_helpers:load_test_engine", "--set", "dft.options={}"], tiny_total, out) == 0
    t = RunStore.open(out).target("design")
    assert t.selection()[0].size == 3 and t.metadata["dft_slots"] == 1
    assert sorted(int(k) for k in t.store.manifest.done_units("dft", "design")) == [0] and t.pending("dft") == []
    cond = t.conditioning()
    assert cond.shape == (6, 256)  # one conditioning total DOS per candidate


@pytest.mark.parametrize("late, message", [
    (["--set", "generator.backend=slurm"], "generator.backend must be one of inline, ray"),
    (["--set", "relax.loader=dosmatgen.screen.library_stages:load_mlff_relaxer", "--set", "relax.options={mlff: nope}"],
     "relax.options.mlff: unknown MLFF 'nope'"),
    (["--set", "relax.options={steps: 3}"], "relax.options do not fit"),
])
def test_bad_backend_or_relax_options_exit_non_zero_and_write_nothing(tmp_path, tiny_total, capsys, late, message):
    out = tmp_path / "run"
    args = ["design", "--band-gap", "1.0", "--source", "dataset", "--n", "2", "--set", f"generator.checkpoint={tiny_total}",
            *FAST, *late, "--out", str(out)]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
