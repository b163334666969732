"""The screen driver runs every stage through the executor registry, and an inline screen needs no cluster extra."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from screen_helpers import TESTS_DIR, write_config

from dosmatgen import plugins
from dosmatgen.errors import InvalidRecordError
from dosmatgen.screen.driver import run_screen
from dosmatgen.screen.executors import InlineExecutor

#: a laptop without the cluster extra: these imports fail
BLOCKED = ("ray", "dask", "distributed", "dask_jobqueue", "submitit", "mpi4py", "dosmatgen_cluster", "dosmatgen_jobs")

BLOCKER = textwrap.dedent(f"""
    import sys
    BLOCKED = {BLOCKED!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
            return None

    sys.meta_path.insert(0, Blocker())
""")


def _run_blocked(code: str, tmp_path, blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    blocker = BLOCKER.replace(repr(BLOCKED), repr(blocked))
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)


def test_inline_screen_runs_without_ray_dask_submitit_or_the_orchestration_package(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
    proc = _run_blocked(f"""
        from dosmatgen.cli.main import main
        rc = main(["screen", {str(cfg)!r}, "--no-progress"])
        print("RC", rc, "LOADED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RC 0 LOADED []" in proc.stdout
    assert (tmp_path / "run" / "summary" / "summary.json").is_file()


@pytest.mark.parametrize("backend, blocked", [
    ({"sample": {"backend": "ray"}}, BLOCKED),  # nothing of the orchestration layer importable
    ({"sample": {"backend": "ray"}}, ("ray",)),  # the wheel's dosmatgen_cluster is there, Ray is not
    ({"relax": {"backend": "dask"}}, ("dask", "distributed")),
    ({"dft": {"backend": "submitit"}}, ("submitit",)),
])
def test_a_cluster_backend_without_the_cluster_extra_fails_at_check_naming_the_backend(tmp_path, backend, blocked):
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run", **backend)
    proc = _run_blocked(f"""
        from dosmatgen.cli.main import main
        sys.exit(main(["screen", {str(cfg)!r}, "--check"]))
    """, tmp_path, blocked)
    name = next(iter(backend.values()))["backend"]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"dosmatgen screen: error: the {name!r} screen-executor needs the cluster extra" in proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "run").exists()  # nothing written


def test_check_accepts_a_valid_config_and_rejects_a_mistyped_loader(tmp_path, capsys):
    from dosmatgen.cli.main import main

    good = write_config(tmp_path / "good.yaml", tmp_path / "run")
    assert main(["screen", str(good), "--check"]) == 0
    assert "OK (1 target(s); sample=inline, relax=inline, rank=inline, dft=inline" in capsys.readouterr().out
    bad = write_config(tmp_path / "bad.yaml", tmp_path / "run", relax={"loader": "dosmatgen.screen.baseline:no_such"})
    assert main(["screen", str(bad), "--check"]) == 2
    assert "has no attribute 'no_such'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


class RecordingExecutor(InlineExecutor):
    calls: list[tuple[str, int]] = []

    def map_shards(self, store, work, units, *, progress):
        self.calls.append((work.stage, len(units)))
        return super().map_shards(store, work, units, progress=progress)

    def run_dft(self, store, work, *, wait, progress):
        self.calls.append(("dft", work.max_attempts))
        return super().run_dft(store, work, wait=wait, progress=progress)


def test_driver_runs_every_stage_on_the_registered_executor(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.setitem(plugins._REGISTRY, (plugins.SCREEN_EXECUTOR, "inline"), RecordingExecutor)
    RecordingExecutor.calls = []
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
    out = run_screen(cfg, progress=False)
    # 8 candidates in shards of 3: 3 shards per stage; DFT with the config's 2 attempts
    assert RecordingExecutor.calls == [("sample", 3), ("relax", 3), ("rank", 3), ("dft", 2)]
    assert out["stages"]["dft"]["completed"] == 2
    RecordingExecutor.calls = []
    run_screen(cfg, progress=False, resume=True)  # nothing pending: no shard stage is mapped again
    assert RecordingExecutor.calls == [("dft", 2)]


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(InvalidRecordError, match=r"no screen-executor called 'slurm' \(known: dask, inline, ray, submitit\)"):
        plugins.lookup(plugins.SCREEN_EXECUTOR, "slurm")


def test_cluster_executors_refuse_the_stages_they_do_not_run():
    pytest.importorskip("submitit")
    from dosmatgen.screen.executors import ShardWork

    submitit_executor = plugins.lookup(plugins.SCREEN_EXECUTOR, "submitit")({})
    with pytest.raises(InvalidRecordError, match="backend 'submitit' cannot run the relax stage"):
        submitit_executor.map_shards(None, ShardWork("relax", "x:y"), [], progress=False)


def test_driver_prestarts_the_relax_executor_only_for_a_stage_it_reaches(tmp_path, monkeypatch):
    """run_screen calls prepare(store, work) on a later stage's executor that has one, when the run will reach that
    stage and it has pending shards, and close() when the run ends."""
    import dosmatgen.screen.driver as driver

    calls = []

    class Preparing(InlineExecutor):
        def prepare(self, store, work):
            calls.append(("prepare", work.stage, tuple(store.target("a").pending("sample"))))

        def close(self):
            calls.append(("close",))

    real = driver.executors

    def with_preparing_relax(cfg):
        run_on = real(cfg)
        run_on["relax"] = Preparing(run_on["relax"].options)
        return run_on

    monkeypatch.setattr(driver, "executors", with_preparing_relax)
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "run")
    run_screen(cfg, progress=False, stop_after="sample")
    assert calls == []  # the relax stage is not reached: nothing started
    run_screen(cfg, resume=True, progress=False, stop_after="rank")
    assert calls == [("prepare", "relax", ()), ("close",)]  # before relax, after the (done) sample stage; closed at the end
    calls.clear()
    run_screen(cfg, resume=True, progress=False, stop_after="rank")
    assert calls == []  # nothing pending in relax
