"""The screen driver with in-process backends: all stages, interrupt + resume, summary, config errors, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from screen_helpers import TESTS_DIR, write_config

from dosmatgen.screen.driver import run_screen
from dosmatgen.errors import InvalidRecordError
from dosmatgen.runstore import RunStore
from dosmatgen.screen.config import load_screen_config

MLFF_LOADER = "dosmatgen.screen.library_stages:load_mlff_relaxer"


@pytest.fixture(autouse=True)
def _helpers_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))


@pytest.mark.slow
def test_interrupt_between_stages_then_resume(tmp_path):
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run", dft={"options": {"fail_dir": str(fail_dir)}})
    first = run_screen(cfg, progress=False, stop_after="relax")
    assert first["summary"] is None and first["stages"]["sample"]["candidates"] == 8
    store = RunStore.open(tmp_path / "run")
    t = store.target("a")
    assert t.pending("sample") == [] and t.pending("relax") == [] and t.pending("rank") == [0, 1, 2]
    before = t.read_crystals("relax")
    # the best-ranked candidate will fail DFT once and be retried
    fe = t.column("relax/formation_energy")
    best = int(np.nanargmin(np.where(t.column("relax/flags") == 0, fe, np.nan)))
    (fail_dir / f"a-{best}").touch()

    again = run_screen(cfg, progress=False)
    assert again["stages"]["sample"] == {"shards": 0} and again["stages"]["relax"] == {"shards": 0}
    after = RunStore.open(tmp_path / "run").target("a")
    assert all(x.equals(y) for x, y in zip(before, after.read_crystals("relax")))  # nothing redone
    rows, scores = after.selection()
    assert rows[0] == best and len(rows) == 2 and np.all(np.diff(scores) >= 0)
    assert after.pending("dft") == [] and not (fail_dir / f"a-{best}").exists()
    assert store.manifest.failures("dft") == []  # the failure was retried and cleared
    d = after.read_dft(0)
    assert d["site_dos"].shape == (after.read_crystals("relax")[best].num_atoms, 3, 401) and np.isfinite(d["site_dos"]).all()
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    c = summary["counts"]["a"]
    assert (c["planned"], c["sampled"], c["selected"], c["dft_done"], c["dft_failed"]) == (8, 8, 2, 2, 0)
    for name in ("ranked.csv", "formation_energy_hist.png"):
        assert (tmp_path / "run" / "summary" / name).stat().st_size > 0
    ranked = (tmp_path / "run" / "summary" / "ranked.csv").read_text().splitlines()
    assert len(ranked) == 3 and ranked[1].startswith("a,1,")
    md = (tmp_path / "run" / "summary" / "ranked.md").read_text().splitlines()
    table = md[: md.index("")] if "" in md else md  # the ranking table, then the compute accounting
    assert len(table) == 4 and md[2].startswith("| a | 1 |") and "## Compute" in md
    assert len(summary["cifs"]) == 2
    from dosmatgen.io.structure_files import read_structures

    _, top = read_structures(tmp_path / "run" / "summary" / summary["cifs"][0])
    assert top[0].num_atoms == after.read_crystals("relax")[best].num_atoms


def test_dft_given_up_after_max_attempts_is_reported(tmp_path):
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run", dft={"options": {"fail_dir": str(fail_dir)}, "max_attempts": 1},
                       targets=[{"id": "a", "unconditioned": True, "num_atoms": [2], "candidates_per_num_atoms": 3}],
                       rank={"top_k": 1})
    run_screen(cfg, progress=False, stop_after="rank")
    row = int(RunStore.open(tmp_path / "run").target("a").selection()[0][0])
    (fail_dir / f"a-{row}").touch()
    out = run_screen(cfg, progress=False)
    assert out["stages"]["dft"]["given_up"] == 1
    assert out["summary"]["counts"]["a"]["dft_failed"] == 1
    failures = RunStore.open(tmp_path / "run").manifest.failures("dft", "a")
    assert failures[0]["attempts"] == 1 and "fails a-" in failures[0]["error"]


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"run": {"dir": "x", "shard_size": 0}}, "run.shard_size: must be >= 1"),
        ({"run": {"dir": "x", "colour": 1}}, "run.colour: unknown key"),
        ({"targets": [{"id": "a", "num_atoms": [2], "candidates_per_num_atoms": 1}]}, "targets[0].target: give exactly one"),
        ({"targets": [{"id": "a", "unconditioned": True, "num_atoms": [9], "candidates_per_num_atoms": 1}]}, "targets[0].num_atoms: 9 exceeds"),
        ({"sample": {"backend": "spark"}}, "sample.backend: must be one of"),
        ({"relax": {"filter": {"min_distance": "far"}}}, "relax.filter.min_distance: expected float"),
        ({"dft": {"dos_grid": {"emin": 1, "emax": 0, "n": 3}}}, "dft.dos_grid"),
        # relax.options are checked against the loader when the config is read, not when the relax stage starts
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "emt", "optimizer": "lbfgs"}}},
         "relax.options.optimizer: unknown optimizer 'lbfgs'; choose one of fire, bfgs"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "chgnett"}}}, "relax.options.mlff: unknown MLFF 'chgnett'"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"fmaxx": 0.1}}}, "relax.options do not fit " + MLFF_LOADER),
        ({"relax": {"loader": "dosmatgen.screen.nowhere:load"}}, "relax.loader: cannot import 'dosmatgen.screen.nowhere'"),
        # the force field's own options too (mlff defaults to the loader's, chgnet)
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff_options": {"graph_code": "fast"}}}},
         "relax.options.mlff_options: chgnet graph_code must be one of numpy, chgnet, got 'fast'"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff_options": {"forward_code": "compiled"}}}},
         "relax.options.mlff_options: chgnet forward_code must be one of factored, chgnet, got 'compiled'"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "chgnet", "mlff_options": {"max_atoms_per_call": 0}}}},
         "relax.options.mlff_options: chgnet max_atoms_per_call must be a positive integer, got 0"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "chgnet", "mlff_options": {"device": "gpu:0"}}}},
         "relax.options.mlff_options: chgnet device 'gpu:0' is not a torch device"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "emt", "mlff_options": {"graph_code": "numpy"}}}},
         "relax.options.mlff_options: MLFF 'emt' has no option 'graph_code'; its options: none"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff": "orb", "mlff_options": {"weights": "x.ckpt"}}}},
         "relax.options.mlff_options: MLFF 'orb' has no option 'weights'; its options: model, weights_path"),
        ({"relax": {"loader": MLFF_LOADER, "options": {"mlff_options": ["numpy"]}}},
         "relax.options.mlff_options must be a mapping"),
    ],
)
def test_config_errors_name_the_key(tmp_path, patch, message):
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
    raw = yaml.safe_load(cfg.read_text())
    for k, v in patch.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and k in raw and k != "run" else v
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(InvalidRecordError) as err:
        load_screen_config(cfg)
    assert message in str(err.value) and "c.yaml" in str(err.value)


def test_bad_relax_option_stops_the_cli_before_anything_is_sampled(tmp_path):
    """A misspelt optimizer in a screen YAML exits 2 with one line naming the file and key, and writes no run."""
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run",
                       relax={"loader": MLFF_LOADER, "options": {"mlff": "emt", "optimizer": "LBFGS"}})
    proc = subprocess.run([sys.executable, "-m", "dosmatgen.cli.main", "screen", str(cfg)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "c.yaml" in proc.stderr and "relax.options.optimizer: unknown optimizer 'LBFGS'" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_good_mlff_options_pass_the_check():
    """The check accepts what the backends accept (so it cannot simply reject every mlff_options)."""
    from dosmatgen.screen.relax_options import check_relax_options

    check_relax_options(MLFF_LOADER, {"mlff": "chgnet", "mlff_options": {"graph_code": "chgnet", "forward_code": "chgnet", "device": "cpu",
                                                                         "max_atoms_per_call": 512}})
    check_relax_options(MLFF_LOADER, {"mlff": "lj", "mlff_options": {"epsilon": 0.1}})
    check_relax_options(MLFF_LOADER, {"mlff": "orb", "mlff_options": {"weights_path": "orb.ckpt", "precision": "float64"}})


def test_shipped_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs" / "screen"
    for name in ("ci.yaml", "local.yaml", "nersc.yaml"):
        cfg = load_screen_config(root / name)
        assert cfg.targets
    nersc = load_screen_config(root / "nersc.yaml")
    t = nersc.targets[0]
    assert t.num_atoms == (4, 5, 6, 7, 8) and t.candidates_per_num_atoms == 2000 and t.site == 0


def test_cli_reports_bad_config_in_one_line_without_importing_ray(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {dir: x}\ntargets: []\n")
    proc = subprocess.run([sys.executable, "-m", "dosmatgen.cli.main", "screen", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "targets: needs at least one target" in proc.stderr
    code = "import sys; from dosmatgen.cli.main import build_parser; build_parser(); print(sorted(m for m in ('ray','dask','submitit','dosmatgen_cluster') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_summary_draws_target_surrogate_dft_per_checked_candidate(tmp_path):
    """With the ranking surrogate at hand the summary adds the paper's Fig. 8 for every DFT-checked candidate."""
    from dosmatgen.dos.grid import SITE_GRID
    from dosmatgen.screen.library_stages import site_dos_predictor
    from dosmatgen.screen.summary import write_summary

    targets = [{"id": "ni", "target": "target-Au3Ni", "site": 0, "num_atoms": [2, 3], "candidates_per_num_atoms": 3}]
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run", targets=targets)
    run_screen(cfg, progress=False)
    store = RunStore.open(tmp_path / "run")
    calls = []

    def fake_surrogate(crystal):
        calls.append(crystal.formula)
        return np.full((crystal.num_atoms, SITE_GRID.n), 0.5)

    summary = write_summary(store, predict_site_dos=fake_surrogate)
    done = store.manifest.done_units("dft", "ni")
    assert len(done) == 2 and len(calls) == 2
    comparisons = [p for p in summary["plots"] if p.startswith("comparisons/")]
    assert sorted(comparisons) == ["comparisons/ni_1.png", "comparisons/ni_2.png"]
    assert all((tmp_path / "run" / "summary" / p).stat().st_size > 0 for p in comparisons)
    # the predictor comes from the rank stage's surrogate, and only from it
    assert site_dos_predictor("dosmatgen.screen.baseline:load_formation_energy_scorer", {}) is None
    predict = site_dos_predictor("dosmatgen.screen.library_stages:load_surrogate_scorer",
                                 {"checkpoint": "bundled:surrogate-small", "site": 0})
    crystal = store.target("ni").read_crystals("relax")[int(store.target("ni").selection()[0][0])]
    assert predict(crystal).shape == (crystal.num_atoms, SITE_GRID.n)


def test_shipped_configs_name_real_loaders_that_accept_their_options(monkeypatch):
    """Every stage loader of the shipped screen configs imports, and its options bind to the loader's signature;
    nersc.yaml runs the paper's pipeline (diffusion model, MLFF relaxation, DOS-match ranking, VASP), not the
    baselines."""
    import inspect
    from pathlib import Path

    from dosmatgen.screen.stages import resolve_callable

    monkeypatch.setenv("SCRATCH", "/scratch/u")
    root = Path(__file__).resolve().parents[1] / "configs" / "screen"
    for name in ("ci.yaml", "local.yaml", "nersc.yaml"):
        cfg = load_screen_config(root / name)
        for stage in (cfg.sample, cfg.relax, cfg.rank, cfg.dft):
            fn = resolve_callable(stage.loader)
            extra = {"device": "cpu"} if stage is cfg.sample and "device" in inspect.signature(fn).parameters else {}
            inspect.signature(fn).bind(**stage.options, **extra)  # raises TypeError on an unknown option
    nersc = load_screen_config(root / "nersc.yaml")
    assert nersc.sample.loader.endswith(":load_diffusion_sampler")
    assert nersc.sample.options["checkpoint"] == "/scratch/u/dosmatgen/train/paper/last.pt"
    assert nersc.relax.loader.endswith(":load_mlff_relaxer") and nersc.relax.options["mlff"] == "orb"
    assert nersc.rank.loader.endswith(":load_surrogate_scorer")
    assert nersc.dft.options["name"] == "vasp" and nersc.dft.options["launch_cmd"][-1] == "vasp_std"
    assert "--overlap" in nersc.dft.options["launch_cmd"]  # an inner srun inside submitit's step needs it
    assert nersc.filters.max_formation_energy == 0.0
    assert "baseline" not in (root / "nersc.yaml").read_text().split("dft:")[0].replace("baselines", "")


def test_vasp_is_a_library_engine_and_jobs_supply_srun_on_slurm():
    from dosmatgen.dft.engine import available_engines, get_engine
    from dosmatgen_jobs.dft_job import SLURM_VASP_LAUNCH, engine_options

    assert "vasp" in available_engines()
    assert get_engine("vasp", launch_cmd="srun vasp_std").launch_cmd == ["srun", "vasp_std"]
    on_slurm = {"SLURM_JOB_ID": "42"}
    assert engine_options({"name": "vasp"}, on_slurm)["launch_cmd"] == SLURM_VASP_LAUNCH == ["srun", "--overlap", "vasp_std"]
    # one rank per 2 CPUs of the job (a bare inner srun would inherit SLURM_NTASKS=1), overlapping submitit's step
    assert engine_options({"name": "vasp"}, {**on_slurm, "SLURM_CPUS_PER_TASK": "128"})["launch_cmd"] == [
        "srun", "--overlap", "--ntasks=64", "--cpus-per-task=2", "--cpu-bind=cores", "vasp_std"]
    assert engine_options({"name": "vasp"}, {}) == {"name": "vasp"}  # off Slurm: inputs only, never srun
    given = ["srun", "-n", "64", "vasp_std"]
    assert engine_options({"name": "vasp", "launch_cmd": given}, on_slurm)["launch_cmd"] == given
    assert engine_options({"name": "gpaw"}, on_slurm) == {"name": "gpaw"}
