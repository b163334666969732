"""The protocol runner: ``evaluate(checkpoint, store, ...)`` reproduces the STRUCTURE of the DOSMatGen paper's
Tables 1 and 2 on our data and writes ``metrics.json``, ``metrics.md``, the figures and ``report.md``.

For every setting (guidance × t_start) it regenerates each selected structure of the split from all of its
sites' DOS (:mod:`~dosmatgen.evaluation.reconstruction`), then scores the outputs against the conditioning
structures with the metric library: validity, structure and composition match (time-outs counted),
uniqueness and novelty (:func:`dosmatgen.metrics.suite.generation_metrics`) and, with a forward surrogate, the
DOS match on all conditioned sites (:mod:`~dosmatgen.evaluation.site_dos_match`). Classifier guidance needs a
regressor checkpoint; without one its rows say "not run (no regressor)".

Hygiene (:mod:`~dosmatgen.evaluation.hygiene`): nothing is trained or tuned here, the split a model was
trained on is refused unless forced, and the report records the split, the file hashes and the seed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.data.store import DatasetStore
from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.evaluation.conditioning_set import ConditioningSet, load_conditioning_set, split_crystals
from dosmatgen.evaluation.energies import FormationEnergyCalculator
from dosmatgen.evaluation.figures import dos_examples_figure, energy_figure, match_rates_figure, training_curves_figure
from dosmatgen.evaluation.hygiene import check_split, denoiser_training_splits, recorded_training_splits, surrogate_training_splits
from dosmatgen.evaluation.models import load_denoiser, load_regressor_model, load_surrogate, require_site_conditioning
from dosmatgen.evaluation.paper_reference import paper_tables
from dosmatgen.evaluation.provenance import file_record, software_versions, utc_now
from dosmatgen.evaluation.acceptance import science_acceptance
from dosmatgen.evaluation.reconstruction import ReconstructionRun, build_guidance, reconstruct
from dosmatgen.evaluation.report import report_markdown
from dosmatgen.evaluation.setting_cache import SettingCache, data_sha256, evaluation_fingerprint
from dosmatgen.evaluation.settings import GUIDANCE_MODES, PAPER_T_STARTS, EvaluationSettings
from dosmatgen.evaluation.site_dos_match import ReferenceDOS, reference_dos, site_dos_match, surrogate_intrinsic_error
from dosmatgen.evaluation.tables import metrics_markdown
from dosmatgen.evaluation.unconditional import DEFAULT_UNCONDITIONAL, UnconditionalModel, load_unconditional
from dosmatgen.metrics.derangement import random_derangement
from dosmatgen.metrics.energy import energy_distribution_comparison
from dosmatgen.metrics.inputs import to_crystal_or_none
from dosmatgen.metrics.structure_match import reduced_composition_key
from dosmatgen.metrics.suite import generation_metrics
from dosmatgen.metrics.validity import validity_summary

log = logging.getLogger(__name__)

FORMAT = "dosmatgen-evaluation"
FORMAT_VERSION = 1
NOT_RUN_NO_REGRESSOR = "not run (no regressor)"


def json_ready(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None and numpy scalars/arrays as Python values (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    return obj


def _per_sample(cs: ConditioningSet, run: ReconstructionRun, valid: Sequence[bool], maes: Sequence[float] | None,
                match_outcomes: Sequence[str]) -> list[dict]:
    rows = []
    for i, (ref, gen) in enumerate(zip(cs.crystals, run.crystals)):
        g = to_crystal_or_none(gen)
        rows.append({
            "id": cs.ids[i],
            "num_atoms": ref.num_atoms,
            "formula_target": ref.formula,
            "formula_generated": g.formula if g is not None else None,
            "generated": g is not None,
            "valid": bool(valid[i]),
            "composition_match": bool(g is not None and reduced_composition_key(g) == reduced_composition_key(ref)),
            "structure_match": match_outcomes[i] == "match",
            "mae_gen_vs_target": None if maes is None else maes[i],
        })
    return rows


def controlled_condition(cond_scaled: Sequence[np.ndarray], control: str, seed: int) -> list[np.ndarray]:
    """The per-structure scaled site DOS the sampler is given: unchanged, or for the ``shuffled`` control every site's
    row replaced by another site's (a seeded derangement over all sites of all structures, shapes kept). The
    ``masked`` control keeps the rows and masks them out in :func:`reconstruct`."""
    if control != "shuffled":
        return list(cond_scaled)
    rows = np.concatenate(list(cond_scaled), axis=0)
    if rows.shape[0] < 2:
        raise InvalidRecordError("--condition-control shuffled needs at least 2 sites")
    shuffled = rows[random_derangement(rows.shape[0], seed)]
    bounds = np.cumsum([len(c) for c in cond_scaled])[:-1]
    return list(np.split(shuffled, bounds))


def _relative(paths: Sequence[Path], out_dir: Path) -> list[str]:
    """Figure paths relative to the output folder (how report.md links them)."""
    return [Path(p).relative_to(out_dir).as_posix() for p in paths]


def _write_structures(path: Path, cs: ConditioningSet, run: ReconstructionRun) -> str | None:
    """Generated structures as a CIF zip (ids ``<test id>@gen``; invalid outputs left out); None if not written."""
    from dosmatgen.io.structure_files import write_cif_zip

    keep = [(f"{cs.ids[i]}@gen", c) for i, c in enumerate(run.crystals) if c is not None]
    if not keep:
        return None
    try:
        write_cif_zip(path, [c for _, c in keep], [k for k, _ in keep])
    except (InvalidRecordError, ValueError, OSError) as exc:
        log.warning("generated structures not written to %s: %s", path, exc)
        return None
    return str(path)


def _outputs_exist(out_dir: Path | None, cached: Mapping[str, Any]) -> bool:
    """Whether the files a cached setting refers to (structures zip, figures) are still in ``out_dir``."""
    if out_dir is None:
        return False
    paths = [p for ps in (cached.get("figures") or {}).values() for p in ps]
    structures = (cached.get("entry") or {}).get("structures_file")
    if structures:
        paths.append(structures)
    return all((out_dir / p).is_file() for p in paths)


def evaluate(
    checkpoint: str | Path,
    store: str | Path | None = None,
    split: str = "test",
    t_starts: Sequence[int] = PAPER_T_STARTS,
    guidance: Sequence[str] = GUIDANCE_MODES,
    surrogate: str | Path | None = None,
    regressor: str | Path | None = None,
    unconditional: str | Path = DEFAULT_UNCONDITIONAL,
    limit: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Run the reconstruction protocol and return the ``metrics.json`` dict (also written to ``out`` when given).

    Args:
        checkpoint: denoiser checkpoint (``dosmatgen train``).
        store: dataset store with site DOS (default: the bundled GPAW dataset).
        split: the split to reconstruct; the checkpoint's training split is refused unless ``force_split=True``.
        t_starts, guidance, limit, seed: the protocol grid and size (see :class:`EvaluationSettings`).
        surrogate: forward site-DOS surrogate checkpoint; without it the DOS-match columns are not run.
        regressor: DOS regressor checkpoint for classifier guidance; without it those rows are not run.
        unconditional: classifier guidance's unconditional model (:mod:`~dosmatgen.evaluation.unconditional`): the
            shipped ``bundled:dosmatgen-small-uncond`` by default, ``"cfg"`` for the denoiser with its condition
            dropped, or a checkpoint path; loaded only when classifier guidance runs.
        out: output folder (``metrics.json``, ``metrics.md``, ``report.md``, ``figures/``, ``structures/``); every
            finished setting is also saved to ``out/settings/`` (:mod:`~dosmatgen.evaluation.setting_cache`).
        resume: reuse the settings an earlier run with the same inputs finished in ``out`` (needs ``out``).
        options: any other :class:`EvaluationSettings` field (step_lr, w, strength, batch_size, match_timeout_s,
            novelty, relax, relax_mlff, n_examples, force_split, use_ema, device, ...).

    Raises:
        CheckpointError / StoreError / InvalidRecordError for a missing or unusable input, and
        SplitHygieneError for a refused split, all before any sampling.
    """
    t_begin = time.perf_counter()
    started = utc_now()
    if resume and out is None:
        raise InvalidRecordError("--resume needs --out: the finished settings are read from OUT/settings/")
    settings = EvaluationSettings(split=split, t_starts=tuple(t_starts), guidance=tuple(guidance), limit=limit, seed=seed, **options)
    if store is None:
        from dosmatgen.data.bundled import bundled_dataset_path

        store = bundled_dataset_path()
    checkpoint = resolve_checkpoint(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: checkpoint not found")
    ds = DatasetStore.open(store)

    # -- models and their compatibility, before anything heavy
    denoiser = load_denoiser(checkpoint, use_ema=settings.use_ema, device=settings.device)
    num_steps = denoiser.diffusion.num_steps
    settings.validate(num_steps)
    denoiser.diffusion = denoiser.diffusion.with_sampling_steps(settings.sampling_steps)
    for g in settings.guidance:
        if g in ("cfg", "none", "uncond"):
            require_site_conditioning(denoiser, g)
    predictor = load_surrogate(surrogate, device=settings.device) if surrogate is not None else None
    regressor_model, regressor_ckpt = (None, None)
    if regressor is not None:
        regressor_model, regressor_ckpt = load_regressor_model(regressor, denoiser, device=settings.device)
    regressor_metrics = dict(regressor_ckpt.metrics) if regressor_ckpt is not None else {}
    uncond: UnconditionalModel | None = None
    if regressor_model is not None and "classifier" in settings.guidance:
        uncond = load_unconditional(unconditional, denoiser.checkpoint, checkpoint, use_ema=settings.use_ema, device=settings.device)

    # -- hidden-split hygiene
    models = {"denoiser": denoiser_training_splits(checkpoint, denoiser.checkpoint.training)}
    if predictor is not None:
        models["surrogate"] = surrogate_training_splits(predictor.info)
    if regressor_ckpt is not None and regressor_ckpt.data:
        models["regressor"] = recorded_training_splits(regressor_ckpt.data, "regressor checkpoint")
    if uncond is not None and uncond.path is not None:
        models["unconditional"] = denoiser_training_splits(uncond.path, uncond.checkpoint.training)
    hygiene = check_split(settings.split, models, force=settings.force_split)
    if regressor_ckpt is not None and not regressor_ckpt.data:
        hygiene.notes.append("the regressor checkpoint does not record its training split (assumed the denoiser's)")

    # -- data
    cs = load_conditioning_set(ds, settings.split, settings.limit, settings.seed)
    cond_scaled = controlled_condition([denoiser.site_scaler.transform(d).astype(np.float32) for d in cs.site_dos],
                                       settings.condition_control, settings.seed)
    train_split = models["denoiser"].train_split
    training = split_crystals(ds, train_split) if settings.novelty and train_split else None
    ref: ReferenceDOS | None = None
    intrinsic = None
    if predictor is not None:
        ref = reference_dos(predictor, cs.crystals, cs.site_dos)
        intrinsic = surrogate_intrinsic_error(predictor, ref, seed=settings.seed)
    offsets = np.concatenate([[0], np.cumsum(cs.num_atoms)])
    site0_scaled = np.stack([d[0] for d in cond_scaled]).astype(np.float64)

    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        (out_dir / "structures").mkdir(parents=True, exist_ok=True)
    cache = None
    if out_dir is not None:
        files = {"checkpoint": file_record(checkpoint), "surrogate": file_record(surrogate), "regressor": file_record(regressor),
                 "unconditional": file_record(uncond.path) if uncond is not None and uncond.path is not None else None}
        arrays = [a for c, d in zip(cs.crystals, cs.site_dos) for a in (c.atomic_numbers, c.frac_coords, c.lattice, d)]
        training_ids = [ds.ids[int(i)] for i in ds.split_indices(train_split)] if training is not None else None
        fingerprint = evaluation_fingerprint(files, ds.path, data_sha256(cs.ids, arrays, training_ids), len(cs),
                                             settings.to_dict(), software_versions())
        cache = SettingCache(out_dir / "settings", fingerprint)
    reused: list[str] = []
    energy_calc = FormationEnergyCalculator(settings.relax_mlff, settings.relax_fmax, settings.relax_max_steps) if settings.relax else None
    energies: dict[str, Any] = {}
    if energy_calc is not None:
        cached = cache.load("ground_truth_energies") if (cache is not None and resume) else None
        if cached is not None:
            energies["ground_truth"] = cached["energies"]
            reused.append("ground_truth_energies")
        else:
            if cache is not None:
                cache.discard("ground_truth_energies")
            log.info("relaxing %d ground-truth structures with %s", len(cs), settings.relax_mlff)
            energies["ground_truth"] = json_ready(energy_calc(cs.crystals).to_dict())
            if cache is not None:
                cache.save("ground_truth_energies", {"energies": energies["ground_truth"]})

    results: dict[str, dict[str, Any]] = {}
    figures: dict[str, list[str]] = {}
    not_run: list[str] = []
    for g in settings.guidance:
        results[g] = {}
        for t in settings.t_starts:
            key = f"{g}_t{t}"
            if g == "classifier" and regressor_model is None:
                results[g][str(t)] = {"status": NOT_RUN_NO_REGRESSOR}
                continue
            cached = cache.load(key) if (cache is not None and resume) else None
            if cached is not None and _outputs_exist(out_dir, cached):
                results[g][str(t)] = cached["entry"]
                figures.update(cached["figures"])
                if cached.get("energies") is not None:
                    energies.setdefault("generated", {})[key] = cached["energies"]
                reused.append(key)
                log.info("setting %s: reused from %s", key, cache.path(key))
                continue
            if cache is not None:
                cache.discard(key)
            log.info("setting %s: reconstructing %d structures from t_start %d", key, len(cs), t)
            run = reconstruct(
                denoiser.model, denoiser.diffusion, cs.crystals, cond_scaled, t_start=t, guidance_name=g,
                guidance=build_guidance(g, w=settings.w, regressor=regressor_model, strength=settings.strength,
                                        unconditional_model=uncond.model if uncond is not None else None),
                step_lr=settings.step_lr, seed=settings.seed, batch_size=settings.batch_size,
                mask_all=settings.condition_control == "masked",
            )
            t_metrics = time.perf_counter()
            metrics = generation_metrics(run.crystals, cs.crystals, [0] * len(cs), site0_scaled, None,
                                         training_structures=training, seed=settings.seed, timeout_s=settings.match_timeout_s,
                                         structure_outcomes=True)
            match_outcomes = metrics["structure_match"].pop("outcomes")
            maes = None
            y_gen = None
            if predictor is not None and ref is not None:
                dm, y_gen_scaled = site_dos_match(predictor, run.crystals, ref, seed=settings.seed)
                maes = dm.pop("per_structure_mae_gen_vs_target")
                metrics.update(dm)
                y_gen = predictor.scaler.inverse_transform(y_gen_scaled)
            valid = validity_summary(run.crystals).valid
            entry: dict[str, Any] = {
                "status": "ok",
                "metrics": metrics,
                "timing": {**run.timing(), "metrics_s": time.perf_counter() - t_metrics},
                "batch_seeds": run.batch_seeds,
                "per_sample": _per_sample(cs, run, valid, maes, match_outcomes),
            }
            if energy_calc is not None:
                e = energy_calc(run.crystals)
                energies.setdefault("generated", {})[key] = json_ready(e.to_dict())
                gt = energies["ground_truth"]
                entry["formation_energy"] = {  # generated vs ground truth, both relaxed / both unrelaxed (eV/atom)
                    "relaxed_vs_ground_truth": energy_distribution_comparison(e.relaxed, gt["relaxed"]),
                    "unrelaxed_vs_ground_truth": energy_distribution_comparison(e.unrelaxed, gt["unrelaxed"]),
                }
            setting_figures = {}
            if out_dir is not None:
                written = _write_structures(out_dir / "structures" / f"{key}.zip", cs, run)
                entry["structures_file"] = None if written is None else f"structures/{key}.zip"
                if settings.n_examples:
                    paths = dos_examples_figure(out_dir / "figures" / f"dos_examples_{key}", key, cs.crystals, run.crystals,
                                                cs.site_dos, y_gen, offsets, cs.ids, maes, settings.n_examples)
                    if paths:
                        setting_figures[f"DOS of site 0, target vs generated ({g}, t_start {t})"] = _relative(paths, out_dir)
            figures.update(setting_figures)
            entry = json_ready(entry)
            results[g][str(t)] = entry
            if cache is not None:
                cache.save(key, {"entry": entry, "figures": setting_figures,
                                 "energies": (energies.get("generated") or {}).get(key)})
            log.info("setting %s done in %.1f s: structure match %.3f, composition match %.3f", key,
                     run.seconds, entry["metrics"]["structure_match"]["rate"], entry["metrics"]["composition_match"]["rate"])
    if "classifier" in settings.guidance and regressor_model is None:
        not_run.append("classifier guidance: " + NOT_RUN_NO_REGRESSOR + " (pass --regressor CKPT from `dosmatgen train-regressor`)")
    if predictor is None:
        not_run.append("DOS match: no surrogate (pass --surrogate CKPT from `dosmatgen surrogate train`)")
    if energy_calc is None:
        not_run.append("formation energies: --relax not given (MLFF relaxation is off by default)")

    if out_dir is not None:
        paths = match_rates_figure(results, out_dir / "figures" / "rates_vs_t_start")
        if paths:
            figures["match rates and DOS MAE against t_start"] = _relative(paths, out_dir)
        if energies:
            paths = energy_figure(energies, out_dir / "figures" / "formation_energy_histograms")
            if paths:
                figures["formation energies (MLFF)"] = _relative(paths, out_dir)
        paths = training_curves_figure(checkpoint, out_dir / "figures" / "training_curves")
        if paths:
            figures["training curves (metrics.jsonl next to the checkpoint)"] = _relative(paths, out_dir)
        else:
            not_run.append("training curves: no metrics.jsonl next to the checkpoint")

    ck = denoiser.checkpoint
    report: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "provenance": {
            "split": settings.split,
            "store": str(Path(ds.path).resolve()),
            "store_split_sizes": ds.split_sizes(),
            "checkpoint": file_record(checkpoint),
            "checkpoint_epoch": ck.epoch,
            "checkpoint_step": ck.global_step,
            "checkpoint_dosmatgen_version": ck.dosmatgen_version,
            "surrogate": file_record(surrogate),
            "regressor": file_record(regressor),
            "regressor_metrics": regressor_metrics,
            "unconditional_model": None if uncond is None else {
                "spec": uncond.spec, "description": uncond.describe(),
                "file": file_record(uncond.path) if uncond.path is not None else None},
            "condition_control": settings.condition_control,
            "seed": settings.seed,
            "limit": settings.limit,
            "software": software_versions(),
            "started_utc": started,
            "resumed_settings": reused,
        },
        "hygiene": hygiene.to_dict(),
        "settings": settings.to_dict(),
        "diffusion_steps": num_steps,
        "conditioning_set": cs.summary(),
        "surrogate_intrinsic": intrinsic,
        "results": results,
        "acceptance": science_acceptance(results, num_steps, seed=settings.seed),
        "energies": energies or {"status": "not run (--relax not given)"},
        "energy_settings": energy_calc.describe() if energy_calc is not None else None,
        "paper": paper_tables(),
        "figures": figures,
        "not_run": not_run,
        "timing": {"total_s": time.perf_counter() - t_begin},
    }
    report = json_ready(report)
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
        (out_dir / "metrics.md").write_text(metrics_markdown(report))
        (out_dir / "report.md").write_text(report_markdown(report))
    return report
