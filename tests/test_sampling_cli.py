"""``dosmatgen sample`` and ``dosmatgen train-regressor`` on a tiny checkpoint trained on the bundled data: every
mode runs, and every bad input fails with a clear one-line error (exit 2) before sampling starts."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import yaml

from dosmatgen.cli.main import main
from dosmatgen.data.bundled import bundled_dataset_path
from dosmatgen.data.torch_dataset import CrystalDOSDataset
from dosmatgen.diffusion.process import DiffusionConfig
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.training import RunConfig, TrainConfig, train

T = 12
STORE = str(bundled_dataset_path())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_cli")
    ds = CrystalDOSDataset(STORE, "train")
    cfg = RunConfig(model=DenoiserConfig.tiny(), diffusion=DiffusionConfig(num_steps=T),
                    training=TrainConfig(batch_size=32, epochs=1, max_batches_per_epoch=2))
    train(cfg, ds, None, root / "ckpt", scalers={"site": ds.site_scaler, "total": ds.total_scaler}, progress=False)
    reg_cfg = {"regressor": {"hidden_dim": 16, "num_layers": 1, "num_freqs": 4, "time_dim": 8},
               "diffusion": {"num_steps": T}, "training": {"batch_size": 32, "epochs": 1, "max_batches_per_epoch": 2},
               "data": {"val_split": None}}
    (root / "reg.yaml").write_text(yaml.safe_dump(reg_cfg))
    assert main(["train-regressor", "--config", str(root / "reg.yaml"), "--data", STORE, "--out", str(root / "reg")]) == 0
    other = {**reg_cfg, "diffusion": {"num_steps": T + 1}}
    (root / "reg_other.yaml").write_text(yaml.safe_dump(other))
    assert main(["train-regressor", "--config", str(root / "reg_other.yaml"), "--data", STORE, "--out", str(root / "reg_other")]) == 0
    cif = root / "NaCl.cif"
    from dosmatgen.crystal import Crystal

    Crystal(np.array([11, 17]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 2.8).to_pymatgen().to(filename=str(cif))
    return root


def _sample(trained, out, *extra):
    return main(["sample", "--checkpoint", str(trained / "ckpt" / "last.pt"), "--n", "3", "--batch-size", "2",
                 "--out", str(out), *extra])


MODES = {
    "cfg": ["--target", "target-Au3Ni", "--num-atoms", "4-6"],
    "masked": ["--target", "target-Au3Ni", "--condition-sites", "0,2", "--num-atoms", "4,6"],
    "window": ["--target", "target-IrO2", "--window", "-2", "2", "--w", "2"],
    "fixed": ["--target", "target-Au3Ni", "--fix-type", "0:Co", "--fix-type", "1:Pd", "--num-atoms", "4"],
    "template": ["--target", f"{STORE}:0:0", "--template", "TEMPLATE", "--t-start", "5", "--condition-sites", "all"],
    "classifier": ["--target", "target-Au3Ni", "--guidance", "classifier", "--regressor", "REG", "--strength", "10"],
    "classifier_masked": ["--target", "target-Au3Ni", "--guidance", "classifier", "--regressor", "REG",
                          "--condition-sites", "0", "--mask-classifier-gradients"],
    "classifier_sep": ["--target", "target-Au3Ni", "--guidance", "classifier", "--regressor", "REG",
                       "--unconditional-checkpoint", "CKPT"],
    "none": ["--num-atoms", "3", "--record-trajectories"],
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_runs_from_the_cli(trained, tmp_path, mode):
    args = [a.replace("TEMPLATE", str(trained / "NaCl.cif")).replace("REG", str(trained / "reg" / "best.pt"))
            .replace("CKPT", str(trained / "ckpt" / "last.pt")) for a in MODES[mode]]
    assert _sample(trained, tmp_path / "out", *args) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "sampling.json").read_text())
    assert summary["n"] == 3
    with zipfile.ZipFile(out / "generated_crystals_cif.zip") as z:
        assert len(z.namelist()) == summary["n_valid"] > 0
    from dosmatgen.io.structure_files import read_structures
    from dosmatgen.runstore import RunStore

    _, crystals = read_structures(out / "generated_crystals.extxyz")
    store = RunStore.open(out, mode="r")
    stored = store.targets()[0].read_crystals("sample")
    assert len(stored) == 3 and sum(c is not None for c in stored) == len(crystals)
    if mode == "fixed":
        assert all(c.atomic_numbers[0] == 27 and c.atomic_numbers[1] == 46 and c.num_atoms == 4 for c in crystals)
    if mode == "template":
        assert all(c.num_atoms == 2 for c in crystals)
    if mode == "none":
        traj = np.load(out / "generated_trajectories.npz")
        assert traj["batch0_steps"].tolist() == list(range(T, -1, -1))


def test_classifier_guidance_moves_toward_the_target(trained, monkeypatch):
    """The mode runs above are smoke tests: they would pass with the guidance sign flipped. Here one guided step
    from a fixed noisy state must lower the regressor's distance to the target, and the same step with the
    gradient's sign flipped (monkeypatched) must raise it, so a flipped sign fails this test."""
    import torch

    from dosmatgen.diffusion.process import JointDiffusion
    from dosmatgen.regressor.checkpoint import load_regressor
    from dosmatgen.sampling import ClassifierGuidance, site_condition
    from dosmatgen.sampling import guidance

    reg = load_regressor(trained / "reg" / "best.pt")
    model, diffusion = reg.build_model(), JointDiffusion(reg.diffusion_config)
    gen = torch.Generator().manual_seed(0)
    num_atoms = torch.tensor([3, 4, 5, 4])
    state = diffusion.prior_sample(num_atoms, gen)
    cond = site_condition(torch.randn(400, generator=gen), num_atoms, None)
    t = torch.full((4,), T // 2, dtype=torch.long)
    scales = diffusion.predictor_scales(t, 4)
    step = ClassifierGuidance(model, strength=0.05)

    def distance(s):
        with torch.no_grad():
            return float(guidance.regressor_distance(model, s, t, cond).sum())

    def distance_after_step():
        return distance(step.adjust(state, state, t, scales, cond))

    before = distance(state)
    descended = distance_after_step()
    gradients = guidance.regressor_gradients

    def flipped(*args):
        g = gradients(*args)
        return g.replace(atom_types=-g.atom_types, frac_coords=-g.frac_coords, lattice=-g.lattice)

    monkeypatch.setattr(guidance, "regressor_gradients", flipped)
    ascended = distance_after_step()
    assert descended < before < ascended, (descended, before, ascended)


def test_same_seed_same_files(trained, tmp_path):
    for name in ("a", "b"):
        assert _sample(trained, tmp_path / name, "--target", "target-Au3Ni", "--seed", "3") == 0
    assert (tmp_path / "a" / "generated_crystals.extxyz").read_text() == (tmp_path / "b" / "generated_crystals.extxyz").read_text()


def _bad_inputs(trained, tmp_path):
    bad_dos = tmp_path / "bad.json"
    bad_dos.write_text(json.dumps({"energies": [-1.0, 0.0, 1.0], "dos": [1.0, float("nan"), 1.0]}))
    neg_dos = tmp_path / "neg.json"
    neg_dos.write_text(json.dumps({"energies": np.linspace(-5, 5, 50).tolist(), "dos": (-np.ones(50)).tolist()}))
    short = tmp_path / "short.npy"
    np.save(short, np.ones(300))
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a CIF\n")
    reg_other = str(trained / "reg_other" / "best.pt")
    return {
        "wrong grid/length": (["--target", str(short)], "400 values"),
        "NaN": (["--target", str(bad_dos)], "NaN"),
        "negative": (["--target", str(neg_dos)], "negative"),
        "element outside vocabulary": (["--target", "target-Au3Ni", "--fix-type", "0:Md"], "vocabulary"),
        "unknown element": (["--target", "target-Au3Ni", "--fix-type", "0:Qq"], "unknown element"),
        "fixed site beyond": (["--target", "target-Au3Ni", "--num-atoms", "3", "--fix-type", "3:Ni"], "beyond the atom count"),
        "condition site beyond": (["--target", "target-Au3Ni", "--num-atoms", "2-4", "--condition-sites", "2"], "beyond the atom count"),
        "zero atoms": (["--num-atoms", "0"], ">= 1"),
        "too many atoms": (["--num-atoms", "9"], "above the largest"),
        "regressor config mismatch": (["--target", "target-Au3Ni", "--guidance", "classifier", "--regressor", reg_other], "different diffusion config"),
        "denoiser as regressor": (["--target", "target-Au3Ni", "--guidance", "classifier", "--regressor", str(trained / "ckpt" / "last.pt")], "not a dosmatgen DOS-regressor"),
        "regressor as checkpoint": (["--checkpoint", str(trained / "reg" / "best.pt")], "not a dosmatgen denoiser"),
        "unreadable template": (["--target", "target-Au3Ni", "--template", str(garbage), "--t-start", "5"], "garbage.cif"),
        "missing template": (["--target", "target-Au3Ni", "--template", str(tmp_path / "none.cif"), "--t-start", "5"], "not found"),
        "window without bins": (["--target", "target-Au3Ni", "--window", "11", "12"], "holds no bin"),
        "cfg without target": (["--guidance", "cfg"], "needs --target"),
        "masked gradients without classifier": (["--target", "target-Au3Ni", "--mask-classifier-gradients"], "only used with --guidance classifier"),
    }


def test_bad_inputs_fail_before_sampling(trained, tmp_path, monkeypatch, capsys):
    import dosmatgen.sampling.generate as gen_module

    def must_not_run(*a, **k):
        raise AssertionError("sampling started despite a bad input")

    monkeypatch.setattr(gen_module, "generate", must_not_run)
    for name, (args, message) in _bad_inputs(trained, tmp_path).items():
        out = tmp_path / name.replace(" ", "_")
        if args[0] == "--checkpoint":
            rc = main(["sample", *args, "--out", str(out)])
        else:
            rc = _sample(trained, out, *args)
        err = capsys.readouterr().err
        assert rc == 2, name
        assert message in err and err.count("\n") == 1, (name, err)
        assert not out.exists(), name
