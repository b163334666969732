"""``dosmatgen loop``: closed-loop discovery, round after round.

Each round ``r`` (folder ``<loop.dir>/round-NN/``):

1. ``screen``: the screen (sample -> relax -> filter -> rank) with round r's models, on the backends its config
   names; the DFT selection is the top K by DOS-match score plus E exploration picks
   (:mod:`dosmatgen.loop.selection`), and the screen's DFT stage computes them (inline or submitit).
2. ``collect``: every finished DFT record is read back, scored against the target and checked for novelty;
   every failed one is kept with its reason (``dft.json``; nothing is dropped silently).
3. ``grow``: ``store.zarr`` = the base store + the DFT records of rounds 0..r, with provenance
   (:mod:`dosmatgen.loop.store_growth`).
4. ``finetune``: the denoiser and the surrogate, from round r's weights, on the grown store (skipped with
   ``loop.fine_tune: false``: the control, which spends the same DFT budget on more screening).
5. ``report``: ``report.json``/``report.md`` and plots for the round; ``<loop.dir>/report.md`` for all rounds.

Every step is recorded in ``round-NN/state.json`` once its outputs are written, and every step's outputs are
a deterministic function of its inputs, so a loop killed at any point and rerun with ``resume=True`` continues
without repeating finished work and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.errors import InvalidRecordError, StoreError
from dosmatgen.loop.config import LoopConfig, check_loop_config, initial_checkpoints, round_screen_config
from dosmatgen.loop.report import (cosine, loop_table, plot_progress, plot_round_overlays, round_markdown,
                                   round_metrics, write_json)

log = logging.getLogger(__name__)

STEPS = ("screen", "collect", "grow", "finetune", "report")
SNAPSHOT = "loop.json"
#: per round: the target and each DFT-checked candidate's conditioned-site DOS (SITE_GRID), for the overlays
CURVES = "dft_site_dos.npz"


def base_store_path(cfg: LoopConfig) -> Path:
    if cfg.base_store == "bundled":
        from dosmatgen.data.bundled import bundled_dataset_path

        return bundled_dataset_path()
    return Path(cfg.base_store)


class RoundState:
    """``round-NN/state.json``: the finished steps and what they produced (checkpoints, store)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {"done": {}}

    def done(self, step: str) -> bool:
        return step in self.data["done"]

    def get(self, step: str) -> dict[str, Any]:
        return self.data["done"][step]

    def mark(self, step: str, **info: Any) -> None:
        self.data["done"][step] = info
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)


def _snapshot(cfg: LoopConfig) -> dict[str, Any]:
    raw = json.loads(json.dumps(cfg.raw, default=str))
    raw.get("loop", {}).pop("rounds", None)  # more rounds may be added to a finished loop
    return raw


def open_loop(cfg: LoopConfig, resume: bool) -> None:
    snap = cfg.dir / SNAPSHOT
    if snap.is_file():
        if not resume:
            raise StoreError(f"{cfg.dir} already holds a loop: continue it with --resume, or choose another loop.dir")
        if json.loads(snap.read_text()) != _snapshot(cfg):
            raise StoreError(f"{cfg.dir}: the config differs from the one this loop started with ({snap}); "
                             "only loop.rounds may change on --resume")
        return
    if resume:
        raise StoreError(f"{cfg.dir}: no loop to resume (no {SNAPSHOT})")
    cfg.dir.mkdir(parents=True, exist_ok=True)
    write_json(snap, _snapshot(cfg))


# ------------------------------------------------------------------------------------------------ round steps
def models_for_round(cfg: LoopConfig, r: int) -> tuple[str, str]:
    if r == 0:
        return initial_checkpoints(cfg)
    prev = RoundState(cfg.round_dir(r - 1))
    if not prev.done("finetune"):
        raise StoreError(f"round {r - 1} has not finished fine-tuning")
    info = prev.get("finetune")
    return info["denoiser"], info["surrogate"]


def store_for_round(cfg: LoopConfig, r: int) -> Path:
    """The dataset the models of round r were trained on: the base store, or round r-1's grown store."""
    return base_store_path(cfg) if r == 0 else Path(RoundState(cfg.round_dir(r - 1)).get("grow")["store"])


def step_screen(cfg: LoopConfig, r: int, denoiser: str, surrogate: str, progress: bool) -> dict[str, Any]:
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.loop.selection import LoopSelector, train_site_latents
    from dosmatgen.screen.driver import run_screen
    from dosmatgen.surrogate.predict import SurrogatePredictor

    sc = round_screen_config(cfg, r, denoiser, surrogate)
    predictor = train_latents = None
    if cfg.explore:
        predictor = SurrogatePredictor.from_checkpoint(surrogate)
        train_latents = train_site_latents(predictor, DatasetStore.open(store_for_round(cfg, r)))
    selector = LoopSelector(cfg.top_k, cfg.explore, cfg.explore_pool, sc.targets[0].site, predictor, train_latents)
    result = run_screen(cfg.screen_config, resume=sc.run_dir.exists(), overrides=cfg.screen_overrides(r, denoiser, surrogate),
                        progress=progress, wait_dft=True, select=selector)
    return {"run": str(sc.run_dir), "waiting": bool(result["summary"] and result["summary"].get("dft_waiting_on_scheduler"))}


def step_collect(cfg: LoopConfig, r: int, surrogate: str) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Read every DFT result of round r back, score it against the target and check its novelty. Returns the
    candidate rows and the arrays for the plots: ``target`` and ``slot<k>`` (the conditioned site's DFT site DOS)."""
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.dft.record_file import read_record_npz
    from dosmatgen.loop.selection import selection_roles
    from dosmatgen.loop.store_growth import TwinFinder, featurize_records, store_crystals
    from dosmatgen.runstore import RunStore
    from dosmatgen.surrogate.predict import SurrogatePredictor

    sc = round_screen_config(cfg, r, *models_for_round(cfg, r))
    store = RunStore.open(sc.run_dir, mode="r")
    t = store.targets()[0]
    site = sc.targets[0].site
    target = np.asarray(t.conditioning(), dtype=np.float64)
    grown = DatasetStore.open(store_for_round(cfg, r))
    sigma = float(grown.info.get("featurizer", {}).get("site", {}).get("sigma_ev", 0.1))
    finder = TwinFinder(store_crystals(grown), grown.ids)
    predictor = SurrogatePredictor.from_checkpoint(surrogate)
    fe = t.column("relax/formation_energy")
    engine = sc.dft.options.get("name", sc.dft.loader)
    failures = {int(f["unit"]): f for f in store.manifest.failures("dft", t.id)}
    out = []
    curves = {"target": target}
    for s in selection_roles(store, t.id):
        k, row = int(s["slot"]), int(s["row"])
        crystal = t.read_crystals("relax", row // t.layout.shard_size)[row % t.layout.shard_size]
        c: dict[str, Any] = {"slot": k, "row": row, "role": s["role"], "score": s["score"],
                             "latent_distance": s["latent_distance"], "id": f"loop-r{r:02d}-{t.id}-{row}",
                             "formula": crystal.formula if crystal is not None else "?",
                             "num_atoms": None if crystal is None else int(crystal.num_atoms),
                             "formation_energy": None if not np.isfinite(fe[row]) else float(fe[row])}
        if not store.manifest.is_done("dft", t.id, k):
            f = failures.get(k)
            c.update(status="failed", reason=f["error"] if f else "not computed (no result and no recorded failure)")
            out.append(c)
            continue
        path = dft_record_path_readonly(store, t.id, row)
        record = read_record_npz(path)
        site_feat = featurize_records([record], sigma)[0][0]
        pred = predictor.predict([record.crystal])[0]
        twin = finder.twin(record.crystal)
        c.update(status="done", reason=None, record=str(path), engine=engine,
                 engine_settings=record.metadata.get("settings"),
                 cosine=cosine(site_feat[site], target), mae=float(np.mean(np.abs(site_feat[site] - target))),
                 novel=twin is None, twin=None if twin is None else grown.ids[twin],
                 surrogate_mae_site=float(np.mean(np.abs(pred[site] - site_feat[site]))),
                 surrogate_mae_all=float(np.mean(np.abs(pred - site_feat))))
        curves[f"slot{k}"] = site_feat[site]
        out.append(c)
    return out, curves


def dft_record_path_readonly(store, target_id: str, row: int) -> Path:
    from dosmatgen.screen.stages import DFT_RECORDS_DIR

    path = Path(store.root) / DFT_RECORDS_DIR / f"{target_id}-{int(row)}.npz"
    if not path.is_file():
        raise StoreError(f"{store.root}: DFT unit of row {row} is done but its record file {path} is missing")
    return path


def loop_records(cfg: LoopConfig, upto: int) -> tuple[list, list[dict[str, Any]]]:
    """Every finished DFT record of rounds 0..upto with its provenance, in round and slot order."""
    from dosmatgen.dft.record_file import read_record_npz

    records, provenance = [], []
    for r in range(upto + 1):
        st = RoundState(cfg.round_dir(r))
        for c in json.loads((cfg.round_dir(r) / "dft.json").read_text())["candidates"]:
            if c["status"] != "done":
                continue
            rec = read_record_npz(c["record"])
            rec.id, rec.source = c["id"], f"loop:{c['engine']}"
            records.append(rec)
            provenance.append({"round": r, "role": c["role"], "engine": c["engine"], "engine_settings": c["engine_settings"],
                               "run": st.get("screen")["run"], "row": c["row"], "slot": c["slot"]})
    return records, provenance


def loop_repeat(cfg: LoopConfig, r: int) -> dict[str, int]:
    """id -> ``train.loop_weight`` for every loop record of rounds 0..r (those outside train are ignored)."""
    if cfg.loop_weight <= 1:
        return {}
    ids = [c["id"] for q in range(r + 1) for c in json.loads((cfg.round_dir(q) / "dft.json").read_text())["candidates"]
           if c["status"] == "done"]
    return {i: cfg.loop_weight for i in ids}


def surrogate_test_mae(surrogate: str, store_path: Path, base_test_ids: set[str]) -> float | None:
    """MAE (states/eV, all sites) of ``surrogate`` on the base store's test structures."""
    from dosmatgen.data.store import DatasetStore
    from dosmatgen.surrogate.predict import SurrogatePredictor

    ds = DatasetStore.open(store_path)
    idx = [i for i in ds.split_indices("test") if ds.ids[int(i)] in base_test_ids]
    if not idx:
        return None
    predictor = SurrogatePredictor.from_checkpoint(surrogate)
    pred = predictor.predict([ds.crystal(int(i)) for i in idx])
    errs = [np.abs(p - ds.site_features(int(i))).mean() for p, i in zip(pred, idx)]
    return float(np.mean(errs))


def base_test_ids(cfg: LoopConfig) -> set[str]:
    from dosmatgen.data.store import DatasetStore

    ds = DatasetStore.open(base_store_path(cfg))
    return {ds.ids[int(i)] for i in ds.split_indices("test")}


# ------------------------------------------------------------------------------------------------------ driver
def run_round(cfg: LoopConfig, r: int, progress: bool = True) -> dict[str, Any]:
    from dosmatgen.loop.finetune import fine_tune_denoiser, fine_tune_surrogate
    from dosmatgen.loop.store_growth import grow_store

    folder = cfg.round_dir(r)
    st = RoundState(folder)
    denoiser, surrogate = models_for_round(cfg, r)
    if not st.done("screen"):
        info = step_screen(cfg, r, denoiser, surrogate, progress)
        if info["waiting"]:
            print(f"round {r}: DFT jobs are queued on the scheduler; rerun with --resume when they finish")
            return {"round": r, "waiting": True}
        st.mark("screen", **info)
    if not st.done("collect"):
        candidates, curves = step_collect(cfg, r, surrogate)
        np.savez(folder / CURVES, **curves)
        write_json(folder / "dft.json", {"round": r, "denoiser": denoiser, "surrogate": surrogate, "candidates": candidates})
        st.mark("collect", done=sum(c["status"] == "done" for c in candidates), failed=sum(c["status"] != "done" for c in candidates))
    if not st.done("grow"):
        records, provenance = loop_records(cfg, r)
        g = grow_store(base_store_path(cfg), records, provenance, folder / "store.zarr", overwrite=True)
        st.mark("grow", store=str(g.path), added=g.added, split_of_added=g.split_of_added, twins=g.twins)
    if not st.done("finetune"):
        store = st.get("grow")["store"]
        if cfg.fine_tune:
            repeat = loop_repeat(cfg, r)
            new_d = fine_tune_denoiser(cfg.denoiser, store, denoiser, folder / "denoiser", backend=cfg.train_backend,
                                       ray=cfg.ray, progress=progress, repeat=repeat)
            new_s = fine_tune_surrogate(cfg.surrogate, store, surrogate, folder / "surrogate", repeat=repeat)
            st.mark("finetune", denoiser=str(new_d), surrogate=str(new_s), fine_tuned=True)
        else:
            st.mark("finetune", denoiser=denoiser, surrogate=surrogate, fine_tuned=False)
    if not st.done("report"):
        write_round_report(cfg, r)
        st.mark("report")
    return json.loads((folder / "report.json").read_text())


def write_round_report(cfg: LoopConfig, r: int) -> dict[str, Any]:
    folder = cfg.round_dir(r)
    st = RoundState(folder)
    dft = json.loads((folder / "dft.json").read_text())
    candidates = dft["candidates"]
    metrics = round_metrics(candidates)
    ft = st.get("finetune")
    test_mae = surrogate_test_mae(ft["surrogate"], Path(st.get("grow")["store"]), base_test_ids(cfg))
    report = {"round": r, "metrics": metrics, "fine_tuned": ft["fine_tuned"], "denoiser": dft["denoiser"],
              "surrogate": dft["surrogate"], "next_denoiser": ft["denoiser"], "next_surrogate": ft["surrogate"],
              "surrogate_test_mae": test_mae, "store_added": st.get("grow")["added"],
              "split_of_added": st.get("grow")["split_of_added"]}
    write_json(folder / "report.json", report)
    (folder / "report.md").write_text(round_markdown(r, metrics, candidates,
                                                     {**report, "surrogate_test_mae": test_mae}))
    target, best = _best_curves(cfg, [r])
    plot_round_overlays(target, best, folder / "dos_overlay", f"round {r}: best DFT-checked candidate")
    return report


def _best_curves(cfg: LoopConfig, rounds: list[int]) -> tuple[np.ndarray, list[tuple[int, str, np.ndarray | None]]]:
    """The target site DOS and, per round, the best candidate's DFT site DOS at the conditioned site."""
    target = None
    out = []
    for r in rounds:
        folder = cfg.round_dir(r)
        with np.load(folder / CURVES) as z:
            curves = {k: z[k] for k in z.files}
        target = curves["target"]
        done = [c for c in json.loads((folder / "dft.json").read_text())["candidates"] if c["status"] == "done"]
        best = max(done, key=lambda c: c["cosine"], default=None)
        out.append((r, "no DFT result", None) if best is None else (r, best["formula"], curves[f"slot{best['slot']}"]))
    return target, out


def write_loop_report(cfg: LoopConfig, upto: int) -> Path:
    rounds = [json.loads((cfg.round_dir(r) / "report.json").read_text()) for r in range(upto + 1)]
    table = loop_table(rounds)
    kind = "fine-tuned each round" if cfg.fine_tune else "control: no fine-tuning (the same DFT budget on more screening)"
    text = (f"# Discovery loop: {cfg.dir.name}\n\n{kind}; {cfg.top_k} top + {cfg.explore} exploration DFT per round.\n\n"
            f"{table}\nPer-round details: round-NN/report.md. Overlays: dos_overlay_rounds.png; progress: progress.png.\n")
    path = cfg.dir / "report.md"
    path.write_text(text)
    write_json(cfg.dir / "report.json", {"rounds": rounds, "fine_tune": cfg.fine_tune})
    target, best = _best_curves(cfg, list(range(upto + 1)))
    plot_round_overlays(target, best, cfg.dir / "dos_overlay_rounds", "best DFT-checked candidate per round")
    plot_progress(rounds, cfg.dir / "progress")
    return path


def run_loop(config: str | os.PathLike, *, resume: bool = False, overrides: dict[str, Any] | None = None,
             progress: bool = True, stop_after_round: int | None = None) -> dict[str, Any]:
    """Run (or continue) a loop; returns {"dir", "rounds": per-round reports, "report": path}."""
    cfg = check_loop_config(config, overrides)
    open_loop(cfg, resume)
    reports = []
    last = cfg.rounds - 1 if stop_after_round is None else min(cfg.rounds - 1, stop_after_round)
    for r in range(last + 1):
        rep = run_round(cfg, r, progress)
        if rep.get("waiting"):
            return {"dir": str(cfg.dir), "rounds": reports, "report": None, "waiting": True}
        reports.append(rep)
        write_loop_report(cfg, r)
        log.info("round %d: best cosine %s", r, rep["metrics"]["best_cosine"])
    return {"dir": str(cfg.dir), "rounds": reports, "report": str(cfg.dir / "report.md"), "waiting": False}


__all__ = ["run_loop", "run_round", "STEPS", "InvalidRecordError"]
