"""Elemental references are computed once per run, in the run folder, and read by every worker."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import numpy as np

from dosmatgen.relax.references import ElementalReferences
from tests.relax_helpers import CountingMLFF


def _worker(cache, log, barrier):
    import dosmatgen.relax.batched_fire as bf

    real = bf.BatchedRelaxer.run

    def counted(self, crystals):
        with open(log, "a") as fh:
            fh.write("relaxed\n")
        time.sleep(1.0)  # a slow relaxation: the other worker arrives while it runs
        return real(self, crystals)

    bf.BatchedRelaxer.run = counted
    barrier.wait(30)
    e = ElementalReferences(CountingMLFF(), cache_path=cache).energy_per_atom(29)
    with open(log, "a") as fh:
        fh.write(f"energy {e!r}\n")


def test_two_workers_relax_the_reference_once(tmp_path):
    cache, log = tmp_path / "run" / "references" / "elemental.json", tmp_path / "calls.log"
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(cache, log, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = log.read_text().splitlines()
    assert lines.count("relaxed") == 1  # one relaxation for both workers
    energies = {ln.split()[1] for ln in lines if ln.startswith("energy")}
    assert len(energies) == 1 and np.isfinite(float(energies.pop()))
    assert list(json.loads(cache.read_text())["elements"]) == ["Cu"]


def test_screen_relaxers_use_the_run_folder_cache(tmp_path):
    from dosmatgen.screen.relax_options import run_relaxer_options

    opts = run_relaxer_options("dosmatgen.screen.library_stages:load_mlff_relaxer", {"mlff": "chgnet"}, tmp_path)
    assert opts == {"mlff": "chgnet", "references_cache": str(tmp_path / "references" / "elemental.json")}
    mine = run_relaxer_options("dosmatgen.screen.library_stages:load_mlff_relaxer", {"references_cache": "/x.json"}, tmp_path)
    assert mine["references_cache"] == "/x.json"  # a cache named in the config wins
    assert run_relaxer_options("dosmatgen.screen.baseline:load_emt_relaxer", {"fmax": 0.1}, tmp_path) == {"fmax": 0.1}
