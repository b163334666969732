"""The evaluation protocol (``dosmatgen evaluate``): end to end on a tiny trained model and a synthetic store,
known-answer scoring with an oracle generator, invalid outputs, input errors and hidden-split hygiene."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.errors import CheckpointError, InvalidRecordError, StoreError
from dosmatgen.evaluation import evaluate
from dosmatgen.evaluation.hygiene import (
    SplitHygieneError,
    TrainingSplits,
    check_split,
    denoiser_training_splits,
)
from dosmatgen.evaluation.models import load_denoiser
from dosmatgen.evaluation.reconstruction import ReconstructionRun, build_guidance, reconstruct
from dosmatgen.model.cspnet import DenoiserOutput
from dosmatgen.surrogate.checkpoint import file_sha256
from dosmatgen.surrogate.config import SurrogateTrainConfig
from dosmatgen.surrogate.train import train_surrogate
from surrogate_fixture_helpers import write_synthetic_dos_store

T = 10  # diffusion steps of the tiny model

DENOISER_YAML = {
    "model": {"hidden_dim": 32, "num_layers": 2, "num_freqs": 8, "time_dim": 16, "cond_mode": "site"},
    "diffusion": {"num_steps": T},
    "training": {"batch_size": 8, "epochs": 2, "lr": 0.002},
    "data": {"train_split": "train", "val_split": "val"},
}
REGRESSOR_YAML = {
    "regressor": {"hidden_dim": 32, "num_layers": 2, "num_freqs": 8, "time_dim": 16},
    "diffusion": {"num_steps": T},
    "training": {"batch_size": 8, "epochs": 1, "lr": 0.002},
    "data": {"train_split": "train", "val_split": "val"},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic store (36 two-atom cells: 22 train, 7 val, 7 test) with a denoiser and a regressor trained by
    the CLI for a few steps, and a tiny surrogate."""
    root = tmp_path_factory.mktemp("eval")
    store = write_synthetic_dos_store(root / "store.zarr")
    (root / "den.yaml").write_text(yaml.safe_dump(DENOISER_YAML))
    (root / "reg.yaml").write_text(yaml.safe_dump(REGRESSOR_YAML))
    assert main(["train", "--config", str(root / "den.yaml"), "--data", str(store), "--out", str(root / "den"), "--no-progress"]) == 0
    assert main(["train-regressor", "--config", str(root / "reg.yaml"), "--data", str(store), "--out", str(root / "reg")]) == 0
    train_surrogate(store, root / "surr", SurrogateTrainConfig(preset="tiny", epochs=2, batch_size=8, num_threads=1))
    return {
        "root": root, "store": store, "checkpoint": root / "den" / "best.pt",
        "regressor": root / "reg" / "best.pt", "surrogate": root / "surr" / "surrogate.pt",
    }


@pytest.mark.slow
def test_cli_end_to_end_writes_metrics_tables_and_report(world, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([
        "evaluate", "--checkpoint", str(world["checkpoint"]), "--data", str(world["store"]), "--split", "test",
        "--t-start", "3", str(T), "--guidance", "cfg", "classifier", "none", "uncond", "--surrogate", str(world["surrogate"]),
        "--regressor", str(world["regressor"]), "--limit", "3", "--seed", "3", "--examples", "1", "--out", str(out),
        "--unconditional-checkpoint", str(world["checkpoint"]),
    ])
    assert rc == 0
    assert "evaluated 3 structures" in capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    p = report["provenance"]
    assert p["split"] == "test" and p["seed"] == 3 and p["limit"] == 3
    assert p["checkpoint"]["sha256"] == file_sha256(world["checkpoint"])
    assert p["surrogate"]["sha256"] == file_sha256(world["surrogate"])
    assert p["regressor"]["sha256"] == file_sha256(world["regressor"])
    # classifier guidance's unconditional model is recorded (here the denoiser file given as a separate model)
    assert p["unconditional_model"]["file"]["sha256"] == file_sha256(world["checkpoint"])
    assert p["unconditional_model"]["spec"] == str(world["checkpoint"]) and p["condition_control"] == "none"
    assert report["hygiene"]["models"]["unconditional"]["train_split"] == "train"
    assert p["software"]["dosmatgen"] and report["timing"]["total_s"] > 0
    assert report["hygiene"]["models"]["denoiser"]["train_split"] == "train"
    assert report["hygiene"]["models"]["denoiser"]["source"] == "checkpoint"  # recorded in the checkpoint itself
    # the regressor (trained by the CLI) records its own splits, so no "assumed the denoiser's" note
    assert report["hygiene"]["models"]["regressor"] == {"train_split": "train", "val_split": "val",
                                                       "store": str(world["store"]), "source": "regressor checkpoint"}
    assert not any("does not record its training split" in n for n in report["hygiene"]["notes"])
    assert report["conditioning_set"]["n_selected"] == 3 and report["conditioning_set"]["n_available"] == 7
    assert report["paper"]["structure_match"]["cfg"]["200"] == pytest.approx(0.816)
    for g in ("cfg", "classifier", "none", "uncond"):
        for t in ("3", str(T)):
            e = report["results"][g][t]
            assert e["status"] == "ok", (g, t)
            m = e["metrics"]
            assert m["n"] == 3 and len(e["per_sample"]) == 3
            assert sum(r["structure_match"] for r in e["per_sample"]) == m["structure_match"]["n_matched"]
            assert "outcomes" not in m["structure_match"]
            for key in ("validity", "structure_match", "composition_match", "uniqueness", "novelty", "dos_match", "dos_similarity"):
                assert key in m, key
            assert m["n_sites"] == 6  # every site of the three 2-atom structures is scored
            mae = m["dos_match"]["mae_gen_vs_target"]
            # a surrogate was given and all 6 sites were scored, so the MAE is a positive finite number
            assert mae["n"] == 6 and math.isfinite(mae["value"]) and mae["value"] > 0
            boot = m["dos_match_bootstrap"]["mae_gen_vs_target"]
            # the interval is around the same mean, over the 3 structures
            assert boot["mean"] == pytest.approx(mae["value"]) and boot["lo"] <= boot["mean"] <= boot["hi"]
            assert boot["n_groups"] == 3
            sm = m["structure_match"]
            assert sm["n"] == sm["n_matched"] + sm["n_no_match"] + sm["n_invalid"] + sm["n_timeout"] + sm["n_error"]
            assert e["timing"]["generation_s"] > 0 and e["timing"]["model_calls"] > 0
            assert e["structures_file"] and (out / e["structures_file"]).is_file()
    # the same seed stream per t_start: all guidance modes start from the same noised templates
    assert report["results"]["cfg"]["3"]["batch_seeds"] == report["results"]["none"]["3"]["batch_seeds"]
    # the acceptance criteria (this T = 10 run: only t_start T) are evaluated, never skipped when their settings ran,
    # and each verdict is the rule applied to its reported paired-bootstrap difference
    from dosmatgen.evaluation.acceptance import MIN_MAE_DIFFERENCE

    crit = report["acceptance"]["criteria"]
    assert len(crit) == 3 and all(c["passed"] is not None for c in crit), [c["detail"] for c in crit]
    for c in crit:
        d = c["difference"]
        rule = d["lo"] > 0.0 if "structure match" in c["name"] else d["hi"] < -MIN_MAE_DIFFERENCE
        assert c["passed"] is bool(rule) and d["lo"] <= d["mean"] <= d["hi"] and c["n_structures"] == 3, c
    md = (out / "metrics.md").read_text()
    assert "Science acceptance" in md and "| uncond | 10 |" in md and "95 % interval" in md
    assert "DOSMatGen paper" in md and "| cfg | 3 |" in md and "| classifier | 10 |" in md
    assert "T = 10" in md  # the paper's columns are empty for a T != 1000 model, and it says why
    text = (out / "report.md").read_text()
    assert "metrics.md" in text and "metrics.json" in text and p["checkpoint"]["sha256"] in text
    assert "classifier guidance's unconditional model: separate unconditional model" in text
    for paths in report["figures"].values():
        assert {Path(rel).suffix for rel in paths} == {".png", ".svg"}
        for rel in paths:
            assert (out / rel).is_file() and rel in text
    assert any("training curves" in k for k in report["figures"])
    assert any(k.startswith("DOS of site 0") for k in report["figures"])


@pytest.mark.slow
def test_every_acceptance_criterion_fails_with_the_condition_masked_out(world, tmp_path):
    """The negative control of issue 19: the condition masked out in every mode (cfg, none and uncond then sample the
    same structures from the same seeds), on the tiny model. No acceptance criterion may pass."""
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("cfg", "none", "uncond"),
                      surrogate=world["surrogate"], novelty=False, n_examples=0, out=tmp_path, condition_control="masked")
    crit = report["acceptance"]["criteria"]
    assert len(crit) == 3 and [c["passed"] for c in crit] == [False, False, False], [c["detail"] for c in crit]
    assert not report["acceptance"]["all_passed"] and report["provenance"]["condition_control"] == "masked"
    rows = {g: report["results"][g][str(T)]["per_sample"] for g in ("cfg", "none", "uncond")}
    assert [r["formula_generated"] for r in rows["cfg"]] == [r["formula_generated"] for r in rows["uncond"]]
    assert "negative control" in (tmp_path / "report.md").read_text()


def test_shuffled_control_moves_every_site_to_another_rows_dos():
    from dosmatgen.evaluation.protocol import controlled_condition
    from dosmatgen.evaluation.settings import EvaluationSettings

    cond = [np.full((n, 4), float(k)) + np.arange(n)[:, None] * 0.1 for k, n in enumerate((2, 3, 1))]
    same = controlled_condition(cond, "none", seed=0)
    assert all(a is b for a, b in zip(same, cond))
    shuffled = controlled_condition(cond, "shuffled", seed=0)
    assert [s.shape for s in shuffled] == [c.shape for c in cond]
    before, after = np.concatenate(cond), np.concatenate(shuffled)
    assert not np.any(np.all(before == after, axis=1))  # no site keeps its own DOS
    assert sorted(map(tuple, before)) == sorted(map(tuple, after))  # the same rows, redistributed
    with pytest.raises(InvalidRecordError, match="condition-control"):
        EvaluationSettings(condition_control="zeroed").validate(1000)


def test_classifier_mode_uses_the_bundled_unconditional_model_unless_told(world, tmp_path, capsys):
    """The default unconditional model (bundled:dosmatgen-small-uncond, T = 1000) does not fit the tiny T = 10
    denoiser: a clear error before sampling. ``cfg`` uses the denoiser with its condition dropped, and says so."""
    with pytest.raises(CheckpointError, match="--unconditional-checkpoint cfg"):
        evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("classifier",), regressor=world["regressor"],
                 limit=1, novelty=False)
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("classifier",), regressor=world["regressor"],
                      unconditional="cfg", limit=1, novelty=False, n_examples=0, out=tmp_path)
    unc = report["provenance"]["unconditional_model"]
    assert unc["spec"] == "cfg" and unc["file"] is None and "condition dropped" in unc["description"]
    assert "condition dropped" in (tmp_path / "report.md").read_text()
    # not loaded (and not recorded) when classifier guidance does not run
    plain = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("none",), limit=1, novelty=False)
    assert plain["provenance"]["unconditional_model"] is None


@pytest.mark.slow
def test_classifier_without_regressor_is_reported_not_run(world, tmp_path):
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("classifier", "none"),
                      limit=2, novelty=False, out=tmp_path)
    assert report["results"]["classifier"][str(T)] == {"status": "not run (no regressor)"}
    assert report["results"]["none"][str(T)]["status"] == "ok"
    assert "dos_match" not in report["results"]["none"][str(T)]["metrics"]  # no surrogate: not run, not faked
    assert any("no regressor" in s for s in report["not_run"]) and any("no surrogate" in s for s in report["not_run"])
    md = (tmp_path / "metrics.md").read_text()
    assert "| classifier | 10 | not run (no regressor)" in md
    assert report["provenance"]["surrogate"] is None and report["surrogate_intrinsic"] is None


def _oracle(crystals_for):
    def fake(model, diffusion, templates, scaled, *, t_start, guidance_name, guidance, step_lr, seed, batch_size, mask_all=False):
        assert len(scaled) == len(templates) and all(s.shape == (c.num_atoms, 400) for s, c in zip(scaled, templates))
        return ReconstructionRun(guidance_name, t_start, crystals_for(list(templates)), 0.01, 0, [seed])
    return fake


def test_oracle_generator_scores_perfect_matches(world, monkeypatch):
    """Returning the conditioning structures themselves must give match rates 1 and MAE(ŷ_gen, ŷ) = 0, and
    MAE(ŷ_gen, y) equal to the surrogate's intrinsic error MAE(ŷ, y)."""
    monkeypatch.setattr("dosmatgen.evaluation.protocol.reconstruct", _oracle(lambda t: t))
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("cfg",),
                      surrogate=world["surrogate"], limit=5)
    m = report["results"]["cfg"][str(T)]["metrics"]
    assert m["structure_match"]["rate"] == 1.0 and m["composition_match"]["rate"] == 1.0
    assert m["validity"]["n_missing"] == 0
    assert m["dos_match"]["mae_gen_vs_pred_ref"]["value"] == 0.0
    assert m["dos_match"]["mae_gen_vs_target"]["value"] == pytest.approx(report["surrogate_intrinsic"]["value"])
    # the synthetic test cells are the training prototypes up to volume (StructureMatcher scales volumes)
    assert m["novelty"]["n_novel"] == 0
    assert all(r["composition_match"] for r in report["results"]["cfg"][str(T)]["per_sample"])


@pytest.mark.slow
def test_missing_and_invalid_generated_structures_count_as_invalid(world, monkeypatch, tmp_path):
    def broken(templates):
        overlapping = Crystal(templates[1].atomic_numbers, np.zeros((2, 3)), templates[1].lattice)
        return [None, overlapping] + templates[2:]

    monkeypatch.setattr("dosmatgen.evaluation.protocol.reconstruct", _oracle(broken))
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("none",),
                      surrogate=world["surrogate"], limit=4, novelty=False, n_examples=2, out=tmp_path)
    e = report["results"]["none"][str(T)]
    m = e["metrics"]
    assert m["validity"]["n_missing"] == 1 and m["validity"]["valid_rate"] <= 0.5
    assert m["structure_match"]["n_invalid"] >= 1 and m["structure_match"]["n_matched"] == 2
    assert m["composition_match"]["n_invalid"] == 1
    mae = m["dos_match"]["mae_gen_vs_target"]
    assert mae["n"] == 8 and mae["n_undefined"] == 2  # the missing structure's two sites
    assert e["per_sample"][0]["generated"] is False and e["per_sample"][0]["mae_gen_vs_target"] is None
    assert e["per_sample"][1]["valid"] is False
    json.loads((tmp_path / "metrics.json").read_text())  # strict JSON (NaN written as null)
    assert (tmp_path / "figures" / f"dos_examples_none_t{T}.png").is_file()


class _NaNModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        out = self.inner(*args)
        return DenoiserOutput(out.coord_score * float("nan"), out.lattice_eps * float("nan"), out.type_eps)


class _RaisingModel(torch.nn.Module):
    def forward(self, *args):
        raise RuntimeError("simulated failure in the denoiser")


def test_sampler_nan_or_errors_become_invalid_structures(world):
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.evaluation.conditioning_set import load_conditioning_set

    d = load_denoiser(world["checkpoint"])
    cs = load_conditioning_set(DatasetStore.open(world["store"]), "test", 3)
    cond = [d.site_scaler.transform(x).astype(np.float32) for x in cs.site_dos]
    run = reconstruct(_NaNModel(d.model), d.diffusion, cs.crystals, cond, t_start=3, guidance_name="none",
                      guidance=build_guidance("none"), step_lr=0.0)
    assert run.crystals == [None, None, None] and not run.failed_batches
    run = reconstruct(_RaisingModel(), d.diffusion, cs.crystals, cond, t_start=3, guidance_name="cfg",
                      guidance=build_guidance("cfg"), batch_size=2)
    assert run.crystals == [None, None, None] and len(run.failed_batches) == 2
    assert "simulated failure" in run.failed_batches[0]


def test_t_start_one_nearly_returns_the_input(world):
    """At t_start = 1 (the least noise) the conditional model barely moves the true structure."""
    report = evaluate(world["checkpoint"], world["store"], t_starts=(1,), guidance=("none",),
                      surrogate=world["surrogate"], limit=7, step_lr=0.0, novelty=False)
    m = report["results"]["none"]["1"]["metrics"]
    assert m["composition_match"]["rate"] >= 0.8
    assert m["structure_match"]["rate"] >= 0.5
    gp = m["dos_match"]["mae_gen_vs_pred_ref"]
    assert gp["value"] < 0.5 * gp["baseline"]


def test_missing_checkpoint_or_store_is_a_clear_error(world, tmp_path, capsys):
    with pytest.raises(CheckpointError, match="not found"):
        evaluate(tmp_path / "missing.pt", world["store"], t_starts=(T,))
    with pytest.raises(StoreError, match="no dataset store"):
        evaluate(world["checkpoint"], tmp_path / "missing.zarr", t_starts=(T,))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(world["store"]), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(world["checkpoint"]), "--data", str(tmp_path / "nope.zarr"), "--out", str(tmp_path / "o")]) == 2
    assert "no dataset store" in capsys.readouterr().err
    # t_start beyond the model's T fails before any sampling
    with pytest.raises(InvalidRecordError, match=r"outside 1\.\.10"):
        evaluate(world["checkpoint"], world["store"], t_starts=(200,))
    with pytest.raises(CheckpointError, match="regressor checkpoint not found"):
        evaluate(world["checkpoint"], world["store"], t_starts=(T,), regressor=tmp_path / "nope.pt")


@pytest.mark.slow
def test_refuses_the_training_split_unless_forced(world, capsys, tmp_path):
    with pytest.raises(SplitHygieneError, match="trained on split 'train'"):
        evaluate(world["checkpoint"], world["store"], split="train", t_starts=(T,))
    with pytest.raises(SplitHygieneError, match="includes the training structures"):
        evaluate(world["checkpoint"], world["store"], split="all", t_starts=(T,))
    assert main(["evaluate", "--checkpoint", str(world["checkpoint"]), "--data", str(world["store"]), "--split", "train",
                 "--t-start", str(T), "--out", str(tmp_path / "o")]) == 2
    assert "--force-split" in capsys.readouterr().err
    forced = evaluate(world["checkpoint"], world["store"], split="train", t_starts=(T,), guidance=("none",), limit=2,
                      novelty=False, force_split=True)
    assert forced["hygiene"]["forced"] and any(n.startswith("FORCED") for n in forced["hygiene"]["notes"])
    val = evaluate(world["checkpoint"], world["store"], split="val", t_starts=(T,), guidance=("none",), limit=2, novelty=False)
    assert any("checkpoint selection" in n for n in val["hygiene"]["notes"])


def test_training_split_lookup_and_surrogate_check(tmp_path):
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    assumed = denoiser_training_splits(ckpt, {})
    assert assumed.train_split == "train" and "assumed" in assumed.source
    (ckpt.parent / "config.yaml").write_text(yaml.safe_dump({"data": {"store": "s.zarr", "train_split": "val", "val_split": "test"}}))
    from_yaml = denoiser_training_splits(ckpt, {})
    assert (from_yaml.train_split, from_yaml.val_split, from_yaml.store) == ("val", "test", "s.zarr")
    recorded = denoiser_training_splits(ckpt, {"data": {"train_split": "test"}})
    assert recorded.train_split == "test" and recorded.source == "checkpoint"
    models = {"denoiser": TrainingSplits("train", "val", None, "x"), "surrogate": TrainingSplits("test", None, None, "y")}
    with pytest.raises(SplitHygieneError, match="surrogate was trained on split 'test'"):
        check_split("test", models)
    assert check_split("test", {"denoiser": models["denoiser"]}).notes == []


@pytest.mark.slow
def test_relax_hook_gives_formation_energies(world, monkeypatch, tmp_path):
    """--relax with a cheap analytic force field (Lennard-Jones) fills the energy section and the histogram."""
    monkeypatch.setenv("DOSMATGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("dosmatgen.evaluation.protocol.reconstruct", _oracle(lambda t: [None] + t[1:]))
    report = evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("none",), limit=3, novelty=False,
                      relax=True, relax_mlff="lj", relax_max_steps=30, out=tmp_path / "out")
    gt = report["energies"]["ground_truth"]
    gen = report["energies"]["generated"][f"none_t{T}"]
    assert len(gt["unrelaxed"]) == 3 and all(v is not None and math.isfinite(v) for v in gt["unrelaxed"])
    assert gen["unrelaxed"][0] is None and gen["status_counts"]["invalid"] == 1
    assert gen["unrelaxed"][1:] == pytest.approx(gt["unrelaxed"][1:])  # same structures, same energies
    fe = report["results"]["none"][str(T)]["formation_energy"]["unrelaxed_vs_ground_truth"]
    assert fe["generated"]["n_nonfinite"] == 1
    assert any("formation energies" in k for k in report["figures"])


def test_regressor_training_split_is_refused_and_an_unrecorded_one_is_noted(world, tmp_path):
    """A regressor trained on the evaluated split is refused like the denoiser; an older checkpoint without a
    recorded split gets the 'assumed the denoiser's' note instead."""
    import dataclasses

    from dosmatgen.regressor.checkpoint import load_regressor, save_regressor

    reg = load_regressor(world["regressor"])
    on_test = save_regressor(tmp_path / "on_test.pt", dataclasses.replace(reg, data={"store": str(world["store"]),
                                                                                  "train_split": "test", "val_split": "val"}))
    with pytest.raises(SplitHygieneError, match=r"the regressor was trained on split 'test' \(regressor checkpoint\)"):
        evaluate(world["checkpoint"], world["store"], split="test", t_starts=(T,), regressor=on_test, unconditional="cfg")
    old = save_regressor(tmp_path / "old.pt", dataclasses.replace(reg, data={}))
    report = evaluate(world["checkpoint"], world["store"], split="test", t_starts=(T,), guidance=("none",), limit=1,
                      novelty=False, regressor=old)
    assert "regressor" not in report["hygiene"]["models"]
    assert any("does not record its training split (assumed the denoiser's)" in n for n in report["hygiene"]["notes"])


def _comparable(report):
    """Results without the wall-clock timings (which differ between runs)."""
    return {g: {t: {k: v for k, v in e.items() if k != "timing"} for t, e in by_t.items()}
            for g, by_t in report["results"].items()}


@pytest.mark.slow
def test_resume_reuses_finished_settings_and_gives_the_same_report(world, tmp_path, monkeypatch, capsys):
    """An interrupted run (here: only cfg at t_start 3 finished) resumed with the full grid reuses that setting and
    computes only the rest; the report equals a fresh run's. Other inputs (a different seed), a corrupt cache file
    or a deleted output file make the setting be recomputed, never reused."""
    common = dict(surrogate=world["surrogate"], limit=3, seed=2, n_examples=1, novelty=False)
    fresh = evaluate(world["checkpoint"], world["store"], t_starts=(3, T), guidance=("cfg", "none"), out=tmp_path / "fresh", **common)
    assert fresh["provenance"]["resumed_settings"] == []
    out = tmp_path / "resumed"
    evaluate(world["checkpoint"], world["store"], t_starts=(3,), guidance=("cfg",), out=out, **common)
    assert sorted(p.name for p in (out / "settings").iterdir()) == ["cfg_t3.json"]

    import dosmatgen.evaluation.protocol as protocol

    calls = []
    real = protocol.reconstruct
    monkeypatch.setattr(protocol, "reconstruct", lambda *a, **k: calls.append((k["guidance_name"], k["t_start"])) or real(*a, **k))
    rc = main(["evaluate", "--checkpoint", str(world["checkpoint"]), "--data", str(world["store"]), "--t-start", "3", str(T),
               "--guidance", "cfg", "none", "--surrogate", str(world["surrogate"]), "--limit", "3", "--seed", "2",
               "--examples", "1", "--no-novelty", "--out", str(out), "--resume"])
    assert rc == 0 and "reused from" in capsys.readouterr().out
    assert sorted(calls) == [("cfg", T), ("none", 3), ("none", T)]
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["provenance"]["resumed_settings"] == ["cfg_t3"]
    assert _comparable(resumed) == _comparable(json.loads(json.dumps(fresh)))
    assert resumed["acceptance"] == fresh["acceptance"]
    assert set(resumed["figures"]) == set(fresh["figures"])

    calls.clear()  # everything cached: nothing recomputed
    evaluate(world["checkpoint"], world["store"], t_starts=(3, T), guidance=("cfg", "none"), out=out, resume=True, **common)
    assert calls == []
    calls.clear()  # another seed selects other inputs: nothing reused
    other = evaluate(world["checkpoint"], world["store"], t_starts=(3,), guidance=("cfg",), out=out, resume=True,
                     **{**common, "seed": 5})
    assert calls == [("cfg", 3)] and other["provenance"]["resumed_settings"] == []
    calls.clear()  # a change of dosmatgen's source code invalidates every cached setting
    monkeypatch.setattr("dosmatgen.evaluation.setting_cache.source_sha256", lambda: "edited")
    evaluate(world["checkpoint"], world["store"], t_starts=(3,), guidance=("cfg",), out=tmp_path / "code", resume=False, **common)
    assert calls == [("cfg", 3)]
    monkeypatch.undo()
    monkeypatch.setattr(protocol, "reconstruct", lambda *a, **k: calls.append((k["guidance_name"], k["t_start"])) or real(*a, **k))
    calls.clear()
    evaluate(world["checkpoint"], world["store"], t_starts=(3,), guidance=("cfg",), out=tmp_path / "code", resume=True, **common)
    assert calls == [("cfg", 3)]
    calls.clear()  # a corrupt cache file and a missing structures file are recomputed
    (out / "settings" / f"none_t{T}.json").write_text("{not json")
    (out / "structures" / "none_t3.zip").unlink()
    again = evaluate(world["checkpoint"], world["store"], t_starts=(3, T), guidance=("none",), out=out, resume=True, **common)
    assert sorted(calls) == [("none", 3), ("none", T)] and again["provenance"]["resumed_settings"] == []
    assert _comparable(again)["none"] == _comparable(json.loads(json.dumps(fresh)))["none"]


def test_resume_needs_an_output_folder(world):
    with pytest.raises(InvalidRecordError, match="--resume needs --out"):
        evaluate(world["checkpoint"], world["store"], t_starts=(T,), guidance=("none",), limit=1, resume=True)


def test_data_hash_sees_values_ids_and_training_split():
    from dosmatgen.evaluation.setting_cache import data_sha256

    arrays = [np.arange(6.0).reshape(2, 3), np.ones((2, 400), np.float32)]
    base = data_sha256(["a", "b"], arrays, ["t1"])
    changed = [arrays[0], arrays[1].copy()]
    changed[1][1, 7] = 1.5
    assert data_sha256(["a", "b"], changed, ["t1"]) != base
    assert data_sha256(["a", "c"], arrays, ["t1"]) != base
    assert data_sha256(["a", "b"], arrays, ["t1", "t2"]) != base
    assert data_sha256(["a", "b"], arrays, None) != base
    assert data_sha256(["a", "b"], [a.copy() for a in arrays], ["t1"]) == base
