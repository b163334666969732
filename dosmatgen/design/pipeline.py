"""``dosmatgen design``: property targets (or a reference crystal) -> conditioning total DOS -> crystals -> the
screen's relax, filter, rank and optional GPAW stages -> the screen's summary, plus the design files.

Order of work (everything that can fail on bad input happens before the output folder is created):

1. validate the request; load the DOS source, the crystal generator, the relaxer and the surrogate;
2. draw the conditioning total DOS (:mod:`dosmatgen.design.sources`) and the atom counts;
3. create ``OUT/`` with a run store (one target ``design``, one candidate per conditioning DOS) and
   ``OUT/design/conditioning.zarr`` (the DOS, their origin and properties);
4. run the screen's stages on the screen's executors (:mod:`dosmatgen.screen.executors`): the total-DOS generator
   on Ray actors (``generator.backend``), the relaxation on Dask (``relax.backend``), the rank stage in-process,
   ``select_top_k``, and DFT of the best ``dft.top_k`` through submitit (``dft.backend``); ``inline`` runs a stage
   in this process. The target's conditioning is the (n, 256) total DOS, one row per candidate, and shard ``k``
   sees rows ``shard_rows(k)`` (:meth:`TargetContext.for_shard`);
5. write the screen summary (:func:`dosmatgen.screen.summary.write_summary`: ``summary.json``, ``ranked.csv``,
   ``cifs/``, plots), then the surrogate total DOS of every candidate that passed the filters, which of them meet
   the targets, and ``summary/design_dos.png`` (generated DOS next to the targets).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.checkpoint_paths import TOTAL_DOS_GENERATOR
from dosmatgen.design.config import DesignConfig, filter_config, load_design_config
from dosmatgen.design.sources import SOURCES, DatasetSource, DesignDos, DosSamplerSource, DosSource, LikeSource
from dosmatgen.dos.property_targets import PropertyTargetError, PropertyTargets, meets_targets, target_properties
from dosmatgen.dos.grid import EnergyGrid, TOTAL_GRID
from dosmatgen.errors import InvalidRecordError

log = logging.getLogger(__name__)
TARGET_ID = "design"


@dataclass
class DesignRequest:
    """One ``dosmatgen design`` call. ``targets`` None only with ``like``. ``overrides``: ``--set`` keys."""

    out: str | Path
    n: int = 256
    targets: PropertyTargets | None = None
    source: str | None = None  # None: config source.kind, or "like" with ``like``
    like: str | Path | None = None
    like_gpaw: bool = False
    te_reference: str | Path | None = None
    dft_top_k: int | None = None
    config: str | Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    progress: bool = False


def _source_kind(r: DesignRequest, cfg: DesignConfig) -> str:
    kind = r.source or ("like" if r.like is not None else cfg.source.get("kind", "dossampler"))
    if kind not in SOURCES:
        raise InvalidRecordError(f"--source must be one of {', '.join(SOURCES)}, got {kind!r}")
    if kind == "like" and r.like is None:
        raise InvalidRecordError("--source like needs --like REF.cif")
    if r.like is not None and kind != "like":
        raise InvalidRecordError(f"--like takes the reference's DOS; it cannot be combined with --source {kind}")
    if kind != "like" and (r.targets is None or not r.targets.any()):
        raise PropertyTargetError("no target: give at least one of --band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric (or --like REF.cif)")
    if r.like_gpaw and r.like is None:
        raise InvalidRecordError("--like-gpaw needs --like REF.cif")
    return kind


def validate_request(r: DesignRequest) -> tuple[DesignConfig, str]:
    """The config and the source kind; DosmatgenError naming the flag for any bad input. Writes nothing."""
    if int(r.n) < 1:
        raise InvalidRecordError(f"--n must be >= 1, got {r.n}")
    if r.dft_top_k is not None and int(r.dft_top_k) < 0:
        raise InvalidRecordError(f"--dft-top-k must be >= 0, got {r.dft_top_k}")
    out = Path(r.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidRecordError("--out exists and is not an empty folder; choose a new one", file=str(out))
    cfg = load_design_config(r.config, r.overrides)
    return cfg, _source_kind(r, cfg)


def build_source(kind: str, cfg: DesignConfig, r: DesignRequest, te_reference: np.ndarray | None) -> tuple[DosSource, Any]:
    """(the DOS source, the like reference or None)."""
    s = cfg.source
    if kind == "dossampler":
        return DosSamplerSource(s.get("checkpoint", "bundled:dossampler-small"), device=cfg.generator.get("device", "cpu"),
                                guidance_scale=s.get("guidance_scale"), max_rounds=int(s.get("max_rounds", 10)),
                                shape_guidance_scale=s.get("shape_guidance_scale")), None
    if kind == "dataset":
        return DatasetSource(s.get("store"), split=s.get("split", "train"), te_reference=te_reference), None
    from dosmatgen.design.like import reference_dos

    ref = reference_dos(r.like, store=s.get("store"), surrogate=cfg.rank.get("surrogate", "bundled:surrogate-small"),  # type: ignore[arg-type]
                        gpaw=r.like_gpaw, device=cfg.generator.get("device", "cpu"))
    return LikeSource(ref), ref


def _te_reference(r: DesignRequest, cfg: DesignConfig) -> np.ndarray | None:
    if r.te_reference is None:
        return None
    if r.targets is None or not r.targets.thermoelectric:
        raise InvalidRecordError("--te-reference is the reference DOS of --thermoelectric; give --thermoelectric too")
    from dosmatgen.design.like import reference_dos

    return reference_dos(r.te_reference, store=cfg.source.get("store"), surrogate=cfg.rank.get("surrogate", "bundled:surrogate-small")).dos


def draw_num_atoms(sampler, spec: str | None, n: int, seed: int) -> np.ndarray:
    import torch

    from dosmatgen.sampling.num_atoms import NumAtomsSpec, max_trained_atoms

    parsed = NumAtomsSpec.parse(spec)
    ckpt = sampler.base.checkpoint
    parsed.check(max_trained_atoms(ckpt.num_atoms_counts))
    return parsed.draw(int(n), ckpt.num_atoms_counts, torch.Generator().manual_seed(int(seed))).numpy()


def write_conditioning(folder: Path, dos: DesignDos, num_atoms: np.ndarray, info: dict[str, Any]) -> Path:
    """``folder/conditioning.zarr``: dos (n, 256), energies (256,), the target properties of each row, num_atoms,
    and (attributes) origin labels and the run's targets and source."""
    import zarr

    path = folder / "conditioning.zarr"
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    g.create_array("dos", data=dos.dos.astype(np.float32))
    g.create_array("energies", data=TOTAL_GRID.energies.astype(np.float64))
    g.create_array("num_atoms", data=np.asarray(num_atoms, dtype=np.int64))
    for name, values in dos.properties().items():
        g.create_array(f"properties_{name}", data=values.astype(np.float64))
    g.attrs.update({"origin": list(dos.origin), **json.loads(json.dumps(info, default=str))})
    return path


def _check_relax_options(cfg: DesignConfig) -> None:
    """The relax loader imports and takes the configured options (checked before anything is written)."""
    from dosmatgen.screen.relax_options import check_relax_options

    check_relax_options(cfg.relax["loader"], cfg.relax.get("options"), file=cfg.path)


def _executors(cfg: DesignConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The screen's executors for the generator, relax, rank and DFT stages (built, nothing started) and the name
    of each stage's backend."""
    from dosmatgen.design.config import stage_backend
    from dosmatgen.screen.executors import make_executor

    out, names = {}, {"rank": "inline"}
    for stage, section in (("sample", "generator"), ("relax", "relax"), ("dft", "dft")):
        backend, options = stage_backend(cfg, section)
        if backend == "inline" and stage == "sample":
            options = {"device": cfg.generator.get("device", "cpu"), **options}
        out[stage], names[stage] = make_executor(backend, options), backend
    out["rank"] = make_executor("inline", {"device": cfg.generator.get("device", "cpu")})
    return out, names


def _shard_works(cfg: DesignConfig, r: DesignRequest, store_root: Path, filters, ref, te_reference) -> dict[str, Any]:
    """The design's three shard stages as the screen's picklable :class:`ShardWork` (loader spec + options)."""
    from dosmatgen.screen.executors import ShardWork
    from dosmatgen.screen.relax_options import run_relaxer_options

    g = cfg.generator
    sample = ShardWork("sample", "dosmatgen.design.sampler:load_total_dos_sampler",
                       {"checkpoint": g.get("checkpoint", TOTAL_DOS_GENERATOR), "w": float(g.get("w", 1.0)),
                        "step_lr": float(g.get("step_lr", 5e-6)), "sampling_steps": g.get("sampling_steps")})
    relax = ShardWork("relax", cfg.relax["loader"], run_relaxer_options(cfg.relax["loader"], dict(cfg.relax.get("options") or {}), store_root),
                      {TARGET_ID: filters})
    rank = ShardWork("rank", "dosmatgen.design.scorer:load_design_scorer",
                     {"surrogate": cfg.rank.get("surrogate", "bundled:surrogate-small"),
                      "targets": None if r.targets is None else r.targets.as_dict(),
                      "reference": None if ref is None else np.asarray(ref.dos, dtype=np.float64).tolist(),
                      "te_reference": None if te_reference is None else np.asarray(te_reference, dtype=np.float64).tolist()})
    return {"sample": sample, "relax": relax, "rank": rank}


def run_design(r: DesignRequest) -> dict[str, Any]:
    """Run ``dosmatgen design``; returns the summary dict (also in ``OUT/summary/summary.json``)."""
    from dosmatgen.design.sampler import TotalDosSampler
    from dosmatgen.design.total_dos import SurrogateTotalDOS
    from dosmatgen.runstore import RunLayout, RunStore, TargetPlan
    from dosmatgen.screen.executors import DFTWork
    from dosmatgen.screen.stages import select_top_k

    t0 = time.perf_counter()
    cfg, kind = validate_request(r)
    filters = filter_config(cfg)
    _check_relax_options(cfg)
    run_on, backends = _executors(cfg)
    te_reference = _te_reference(r, cfg)
    # -- 1. load everything that can fail
    source, ref = build_source(kind, cfg, r, te_reference)
    if ref is not None and r.targets is not None and r.targets.thermoelectric and te_reference is None:
        te_reference = ref.dos  # crystal-to-crystal translation of a thermoelectric: the reference is the TE reference
    g = cfg.generator
    sampler = TotalDosSampler(g.get("checkpoint", TOTAL_DOS_GENERATOR), w=float(g.get("w", 1.0)),
                              step_lr=float(g.get("step_lr", 5e-6)), device=g.get("device", "cpu"),
                              sampling_steps=g.get("sampling_steps"))
    predict = SurrogateTotalDOS(cfg.rank.get("surrogate", "bundled:surrogate-small"), device=g.get("device", "cpu"))
    seed = int(cfg.run.get("seed", 0))
    # -- 2. conditioning DOS and atom counts
    dos = source(r.targets, int(r.n), seed)
    num_atoms = draw_num_atoms(sampler, g.get("num_atoms"), dos.dos.shape[0], seed)
    del sampler  # the stage workers build their own
    dft_k = int(cfg.dft.get("top_k", 0) if r.dft_top_k is None else r.dft_top_k)
    # -- 3. the run folder: one target whose conditioning is one total DOS per candidate
    out = Path(r.out)
    grid = cfg.dft.get("dos_grid", {"emin": -10.0, "emax": 10.0, "n": 401})
    layout = RunLayout(int(cfg.run["shard_size"]), int(num_atoms.max()), int(cfg.run["top_k"]), seed,
                       EnergyGrid(float(grid["emin"]), float(grid["emax"]), int(grid["n"])),
                       tuple(cfg.dft.get("dos_channels", ["total"])))
    info = {"targets": None if r.targets is None else r.targets.as_dict(), "source": dos.info, "config": cfg.path,
            "generator": g.get("checkpoint"), "surrogate": cfg.rank.get("surrogate"), "surrogate_route": predict.route,
            "te_reference": None if te_reference is None else ("--like reference" if r.te_reference is None else str(r.te_reference))}
    store = RunStore.create(out, layout, [TargetPlan(TARGET_ID, num_atoms, dos.dos, {"design": info, "dft_slots": dft_k})])
    (out / "design").mkdir(exist_ok=True)
    write_conditioning(out / "design", dos, num_atoms, info)
    # -- 4. the screen's stages on the configured executors (Ray sampling, Dask relaxation, inline rank, submitit DFT)
    works = _shard_works(cfg, r, store.root, filters, ref, te_reference)
    stage_s: dict[str, float] = {}
    reports: dict[str, Any] = {}
    for name in ("sample", "relax", "rank"):
        s0 = time.perf_counter()
        units = [(TARGET_ID, k) for k in store.target(TARGET_ID).pending(name)]
        reports[name] = run_on[name].map_shards(store, works[name], units, progress=r.progress) if units else {"shards": 0}
        stage_s[name] = time.perf_counter() - s0
        log.info("%s: %s", name, reports[name])
    select_top_k(store, TARGET_ID)
    if dft_k:
        s0 = time.perf_counter()
        reports["dft"] = run_on["dft"].run_dft(store, DFTWork(cfg.dft.get("loader", "dosmatgen.dft.engine:get_engine"),
                                                              dict(cfg.dft.get("options") or {}), int(cfg.dft.get("max_attempts", 2))),
                                               wait=True, progress=r.progress)
        stage_s["dft"] = time.perf_counter() - s0
    stages = {name: {"backend": backends[name], **rep} for name, rep in reports.items()}
    return _write_summaries(store, cfg, r, dos, predict, te_reference, ref, stage_s, time.perf_counter() - t0, stages)


def _write_summaries(store, cfg: DesignConfig, r: DesignRequest, dos: DesignDos, predict, te_reference, ref,
                     stage_s: dict[str, float], seconds: float, stages: dict[str, Any] | None = None) -> dict[str, Any]:
    from dosmatgen.plots.design_dos import plot_design_dos
    from dosmatgen.screen.library_stages import site_dos_predictor
    from dosmatgen.screen.summary import write_summary

    site = site_dos_predictor("dosmatgen.screen.library_stages:load_surrogate_scorer", {"checkpoint": cfg.rank.get("surrogate")}) \
        if predict.predictor.target == "site" else None
    summary = write_summary(store, predict_site_dos=site)
    t = store.target(TARGET_ID)
    flags = t.column("relax/flags")
    relaxed = [c for k in range(t.num_shards) for c in t.read_crystals("relax", k)]
    passed = np.flatnonzero((flags == 0) & np.array([c is not None for c in relaxed]))
    pred = predict([relaxed[i] for i in passed]) if passed.size else np.zeros((0, TOTAL_GRID.n))
    finite = np.all(np.isfinite(pred), axis=1)
    design: dict[str, Any] = {
        "source": dos.info, "conditioning_dos": int(dos.dos.shape[0]),
        "conditioning_meet_targets": None if r.targets is None else int(meets_targets(dos.dos, r.targets, te_reference).sum()),
        "passed_filters": int(passed.size), "surrogate_route": predict.route, "seconds": seconds, "stage_seconds": stage_s,
        "te_cosine_criterion": te_reference is not None, "stages": stages or {},
    }
    if r.targets is not None:
        ok = meets_targets(pred[finite], r.targets, te_reference) if finite.any() else np.zeros(0, dtype=bool)
        design["targets"] = r.targets.as_dict()
        design["surrogate_meet_targets"] = int(ok.sum())
        design["surrogate_meet_rate_of_passed"] = float(ok.mean()) if ok.size else float("nan")
    if ref is not None:
        from dosmatgen.design.scorer import cosine_rows

        cos = cosine_rows(pred[finite], ref.dos) if finite.any() else np.zeros(0)
        design["like"] = {"reference": ref.label, "how": ref.how, "file": ref.file,
                          "mean_cosine_passed": float(np.mean(cos)) if cos.size else float("nan")}
    props = target_properties(pred[finite]) if finite.any() else {}
    design["surrogate_properties_passed"] = {k: [float(x) for x in v] for k, v in props.items()}
    out = store.root / "summary"
    rows, _ = t.selection()
    top = predict([relaxed[int(i)] for i in rows[:4]]) if rows.size else np.zeros((0, TOTAL_GRID.n))
    top_cond = dos.dos[rows[:4]] if rows.size else np.zeros((0, TOTAL_GRID.n))
    plots = plot_design_dos(dos.dos, r.targets, out / "design_dos.png", reference_label=None if ref is None else ref.label,
                            top_candidates=top, top_conditioning=top_cond)
    summary["plots"].extend(str(Path(p).relative_to(out)) for p in plots if str(p).endswith(".png"))
    summary["design"] = design
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def format_design(summary: dict[str, Any]) -> str:
    from dosmatgen.screen.summary import format_summary

    d = summary["design"]
    lines = [format_summary(summary), f"conditioning DOS: {d['conditioning_dos']} from {d['source'].get('source')}"]
    if "surrogate_meet_targets" in d:
        lines.append(f"passed filters: {d['passed_filters']}; surrogate total DOS meets the targets: {d['surrogate_meet_targets']}")
    if "like" in d:
        lines.append(f"reference {d['like']['reference']} ({d['like']['how']} DOS); mean cosine of passed candidates "
                     f"{d['like']['mean_cosine_passed']:.3f}")
    return "\n".join(lines)
