"""configs/screen/nersc.yaml against slurm/screen.sh: GPU relaxation with one Dask worker per GPU, at least two
shards per worker, TLS and readiness wired to what the batch script exports, VASP on a whole CPU node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _directive(name: str) -> int:
    text = (ROOT / "slurm" / "screen.sh").read_text()
    return int(re.search(rf"^#SBATCH --{name}=(\d+)", text, re.M).group(1))


@pytest.fixture
def cfg(monkeypatch, tmp_path):
    from dosmatgen.screen.config import load_screen_config

    nodes, gpus = _directive("nodes"), _directive("gpus-per-task")
    for k, v in {"SCRATCH": str(tmp_path), "NERSC_PROJECT": "m0000", "PMG_VASP_PSP_DIR": str(tmp_path),
                 "DOSMATGEN_EXPECTED_NODES": str(nodes), "DOSMATGEN_EXPECTED_GPUS": str(nodes * gpus),
                 "DOSMATGEN_DASK_EXPECTED_WORKERS": str(nodes * gpus), "DOSMATGEN_DASK_SCHEDULER_FILE": str(tmp_path / "s.json"),
                 "DOSMATGEN_DASK_TLS_DIR": str(tmp_path / "tls")}.items():
        monkeypatch.setenv(k, v)
    return load_screen_config(ROOT / "configs" / "screen" / "nersc.yaml"), nodes, gpus


def test_relaxation_runs_on_the_gpus_with_two_shards_per_worker(cfg):
    c, nodes, gpus = cfg
    assert c.relax.options["mlff_options"]["device"] == "cuda"
    workers = int(c.relax.backend_options["min_workers"])
    assert workers == nodes * gpus == 16
    for t in c.targets:
        shards = -(-len(t.num_atoms) * t.candidates_per_num_atoms // c.shard_size)
        assert shards >= 2 * workers, (t.id, shards, workers)


def test_cluster_sections_use_what_the_batch_script_exports(cfg, tmp_path):
    c, nodes, gpus = cfg
    d = c.relax.backend_options
    assert d["cluster"] == "scheduler_file" and d["tls_dir"] == str(tmp_path / "tls") and not d.get("insecure")
    r = c.sample.backend_options
    assert (int(r["expected_nodes"]), int(r["expected_gpus"])) == (nodes, nodes * gpus)
    assert r["max_shard_attempts"] >= 2 and d["max_shard_attempts"] >= 2
    script = (ROOT / "slurm" / "screen.sh").read_text()
    for var in ("DOSMATGEN_EXPECTED_NODES", "DOSMATGEN_EXPECTED_GPUS", "DOSMATGEN_DASK_EXPECTED_WORKERS",
                "DOSMATGEN_DASK_SCHEDULER_FILE"):
        assert f"export {var}=" in script
    assert "--protocol tls" in script


def test_vasp_fills_a_perlmutter_cpu_node(cfg):
    c, _, _ = cfg
    cmd = c.dft.options["launch_cmd"]
    assert "--ntasks=128" in cmd and "--cpus-per-task=2" in cmd and "--cpu-bind=cores" in cmd
    assert c.dft.backend_options["cpus_per_task"] == 256
