"""A sampling request (what ``dosmatgen sample`` asks for) and its validation BEFORE any sampling starts.

:func:`prepare` loads the checkpoint(s), resolves the target, reads the template, parses atom counts, fixed types,
condition sites and the window, and raises a clear :class:`~dosmatgen.errors.DosmatgenError` for every bad input:
a target DOS on the wrong grid or with NaN / negative values, an element outside the vocabulary, a fixed-type or
condition site beyond the atom count, an atom count <= 0 or above the trained maximum, a checkpoint whose config
does not match (conditioning mode, DOS width, window channel, diffusion config of the regressor or the
unconditional model), and a template file that cannot be read. The result, :class:`PreparedSampling`, is what
:func:`dosmatgen.sampling.generate.generate` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dosmatgen.checkpoint_compat import check_regressor_fits, check_unconditional_fits, site_scaler
from dosmatgen.crystal import Crystal
from dosmatgen.diffusion.process import JointDiffusion
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID
from dosmatgen.errors import CheckpointError, InvalidRecordError, field_error
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH
from dosmatgen.sampling.condition import check_sites, window_mask
from dosmatgen.sampling.constraints import FixedTypes
from dosmatgen.sampling.num_atoms import NumAtomsSpec, max_trained_atoms
from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint

GUIDANCE_CHOICES = ("cfg", "classifier", "none")


@dataclass
class SamplingRequest:
    """Everything one ``dosmatgen sample`` call asks for (see ``dosmatgen sample --help``).

    * ``target``: a target spec for :func:`dosmatgen.targets.resolve_target` (None: unconditional generation).
    * ``condition_sites``: "all", or site indices conditioned in every crystal (default: site 0, as in the paper's
      masked generation); other sites are unconditioned (mask 0).
    * ``window``: (lo, hi) eV; the condition covers only these bins (needs a model with a window channel).
    * ``template`` + ``t_start``: start from the template noised to t_start (template-guided generation).
    * ``fix_types``: ``["SITE:ELEMENT", ...]``, held at every step in every crystal.
    * ``num_atoms``: "6", "4-8", "4,6" or None (draw from the training distribution stored in the checkpoint).
    * ``guidance``: "cfg" (default with a target), "classifier" or "none" (one conditional pass with a target,
      else unconditional). ``w`` the CFG weight (paper: 1). ``regressor``/``strength`` for classifier guidance;
      ``unconditional_checkpoint`` an optional separately trained unconditional model;
      ``mask_classifier_gradients`` guides only the conditioned sites' types and coordinates.
    * ``sampling_steps``: S evenly spaced steps of the T-step reverse grid (None: all T; docs/sampling-steps.md).
    """

    checkpoint: str | Path
    target: str | None = None
    efermi: float = 0.0
    condition_sites: str | Sequence[int] | None = None
    window: tuple[float, float] | None = None
    template: str | Path | None = None
    t_start: int | None = None
    fix_types: Sequence[str] = ()
    num_atoms: str | None = None
    n: int = 16
    batch_size: int = 64
    guidance: str | None = None
    w: float = 1.0
    regressor: str | Path | None = None
    strength: float = DEFAULT_CLASSIFIER_STRENGTH
    unconditional_checkpoint: str | Path | None = None
    mask_classifier_gradients: bool = False
    step_lr: float = 5e-6
    sampling_steps: int | None = None
    seed: int = 0
    record_trajectories: bool = False
    use_ema: bool = True
    device: str = "cpu"


@dataclass
class PreparedSampling:
    """A validated request with everything loaded: models, scaled target, parsed constraints, atom counts."""

    request: SamplingRequest
    checkpoint: DenoiserCheckpoint
    model: nn.Module
    diffusion: JointDiffusion
    guidance_name: str
    num_atoms: torch.Tensor  # (n,) long, the count of every candidate
    target_name: str | None = None
    target_features: np.ndarray | None = None  # (400,) unscaled
    target_scaled: torch.Tensor | None = None  # (400,)
    condition_sites: tuple[int, ...] | None = None  # None = all sites
    window: torch.Tensor | None = None  # (400,) 0/1
    fixed_types: FixedTypes = field(default_factory=lambda: FixedTypes((), ()))
    templates: list[Crystal] = field(default_factory=list)
    t_start: int | None = None
    regressor: nn.Module | None = None
    unconditional_model: nn.Module | None = None


def parse_sites(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """"all" -> None (every site); "0,2" / [0, 2] -> (0, 2); None -> (0,)."""
    if text is None:
        return (0,)
    if isinstance(text, str):
        if text.strip().lower() == "all":
            return None
        try:
            return tuple(int(s) for s in text.split(",") if s.strip())
        except ValueError:
            raise field_error(InvalidRecordError, f"{{condition_sites}} {text!r}: expected 'all' or site indices like 0,2") from None
    return tuple(int(s) for s in text)


def _check_denoiser(ckpt: DenoiserCheckpoint, path, conditional: bool, window: bool) -> None:
    cfg = ckpt.model_config
    if not conditional:
        return
    if cfg.cond_mode == "none":
        raise field_error(CheckpointError, f"{path}: this checkpoint has no DOS conditioning (cond_mode 'none'); use {{guidance}} classifier or drop {{target}}")
    grid = TOTAL_GRID if cfg.cond_mode == "total" else SITE_GRID  # total: the target is a crystal's total DOS
    if cfg.cond_dim != grid.n:
        raise CheckpointError(f"{path}: model config expects {cfg.cond_dim} DOS bins, {cfg.cond_mode} targets have {grid.n}")
    if window and not cfg.window_channel:
        raise field_error(CheckpointError, f"{path}: this checkpoint was trained without a window channel; {{window}} needs one")


def _read_templates(path, num_classes: int) -> list[Crystal]:
    from dosmatgen.io.structure_files import read_structures

    p = Path(path)
    if not p.exists():
        raise InvalidRecordError("template file not found", file=str(p))
    try:
        _, crystals = read_structures(p)
    except InvalidRecordError as err:
        raise err.located(file=str(p)) from None
    except Exception as exc:  # parsers raise many kinds of errors on garbage
        raise InvalidRecordError(f"cannot read the template ({type(exc).__name__}: {exc})", file=str(p)) from None
    if not crystals:
        raise InvalidRecordError("the template file holds no structure", file=str(p))
    for c in crystals:
        if int(c.atomic_numbers.max()) > num_classes:
            raise InvalidRecordError(f"template element Z={int(c.atomic_numbers.max())} is outside the model's vocabulary of Z 1..{num_classes}", file=str(p))
    return crystals


def prepare(request: SamplingRequest) -> PreparedSampling:
    """Validate ``request`` and load what sampling needs; raises DosmatgenError for any bad input."""
    r = request
    if r.n < 1:
        raise field_error(InvalidRecordError, f"{{n}} must be >= 1, got {r.n}")
    if r.batch_size < 1:
        raise field_error(InvalidRecordError, f"{{batch_size}} must be >= 1, got {r.batch_size}")
    if r.step_lr < 0:
        raise field_error(InvalidRecordError, f"{{step_lr}} must be >= 0, got {r.step_lr}")
    guidance = r.guidance or ("cfg" if r.target is not None else "none")
    if guidance not in GUIDANCE_CHOICES:
        raise field_error(InvalidRecordError, f"{{guidance}} must be one of {', '.join(GUIDANCE_CHOICES)}, got {guidance!r}")
    if guidance in ("cfg", "classifier") and r.target is None:
        raise field_error(InvalidRecordError, f"{{guidance}} {guidance} needs {{target}}")
    if guidance == "classifier" and r.regressor is None:
        raise field_error(InvalidRecordError, "{guidance} classifier needs {regressor} CKPT (train one with `dosmatgen train-regressor`)")
    if r.window is not None and r.target is None:
        raise field_error(InvalidRecordError, "{window} needs {target}")

    ckpt = load_checkpoint(r.checkpoint, map_location=r.device)
    uses_model_condition = r.target is not None and guidance != "classifier"
    _check_denoiser(ckpt, r.checkpoint, uses_model_condition, r.window is not None)
    num_classes = ckpt.model_config.num_classes
    if r.sampling_steps is not None and not 1 <= int(r.sampling_steps) <= ckpt.diffusion_config.num_steps:
        raise InvalidRecordError(f"--sampling-steps must lie in 1..{ckpt.diffusion_config.num_steps}, got {r.sampling_steps}")
    diffusion = JointDiffusion(ckpt.diffusion_config, device=r.device, sampling_steps=r.sampling_steps)
    max_trained = max_trained_atoms(ckpt.num_atoms_counts)

    prepared = PreparedSampling(
        request=r, checkpoint=ckpt, model=ckpt.build_model(use_ema=r.use_ema, device=r.device), diffusion=diffusion,
        guidance_name=guidance, num_atoms=torch.zeros(0, dtype=torch.long),
    )

    # -- target, window, condition sites
    if r.target is not None and ckpt.model_config.cond_mode == "total" and guidance != "classifier":
        from dosmatgen.sampling.total_condition import resolve_total_target, total_scaler

        if r.window is not None or r.condition_sites is not None:
            raise field_error(InvalidRecordError, "{window} and {condition_sites} apply to site-DOS targets; this checkpoint is conditioned on the total DOS")
        total = resolve_total_target(str(r.target))
        prepared.target_name, prepared.target_features = total.name, total.features
        prepared.target_scaled = torch.as_tensor(total_scaler(ckpt.scalers, r.checkpoint).transform(total.features), dtype=torch.float32)
    elif r.target is not None:
        from dosmatgen.targets import resolve_target

        target = resolve_target(str(r.target), efermi=float(r.efermi))
        scaler = site_scaler(ckpt.scalers, r.checkpoint, "checkpoint")
        prepared.target_name = target.name
        prepared.target_features = target.features
        prepared.target_scaled = torch.as_tensor(scaler.transform(target.features), dtype=torch.float32)
        prepared.condition_sites = parse_sites(r.condition_sites)
        if r.window is not None:
            prepared.window = window_mask(SITE_GRID, float(r.window[0]), float(r.window[1]))
    elif r.condition_sites is not None:
        raise field_error(InvalidRecordError, "{condition_sites} needs {target}")

    # -- start: template or prior, atom counts
    gen = torch.Generator().manual_seed(int(r.seed))
    if r.template is not None:
        if r.num_atoms is not None:
            raise field_error(InvalidRecordError, "{num_atoms} conflicts with {template} (the template fixes the atom count)")
        if r.t_start is None:
            raise field_error(InvalidRecordError, "{template} needs {t_start} (e.g. 200 or 500)")
        if not 1 <= int(r.t_start) <= diffusion.num_steps:
            raise field_error(InvalidRecordError, f"{{t_start}} must lie in 1..{diffusion.num_steps}, got {r.t_start}")
        prepared.templates = _read_templates(r.template, num_classes)
        counts = [c.num_atoms for c in prepared.templates]
        NumAtomsSpec(tuple(sorted(set(counts)))).check(max_trained)
        prepared.num_atoms = torch.tensor([counts[i % len(counts)] for i in range(r.n)], dtype=torch.long)
        prepared.t_start = int(r.t_start)
    else:
        if r.t_start is not None and int(r.t_start) != diffusion.num_steps:
            raise field_error(InvalidRecordError, "{t_start} below T needs {template}")
        spec = NumAtomsSpec.parse(r.num_atoms)
        spec.check(max_trained)
        prepared.num_atoms = spec.draw(r.n, ckpt.num_atoms_counts, gen)

    smallest = [int(prepared.num_atoms.min())]
    if prepared.condition_sites is not None:
        check_sites(prepared.condition_sites, smallest, "condition")
    prepared.fixed_types = FixedTypes.parse(r.fix_types, num_classes)
    prepared.fixed_types.check(smallest)

    # -- classifier guidance models
    if guidance == "classifier":
        from dosmatgen.regressor.checkpoint import load_regressor

        reg = load_regressor(r.regressor, map_location=r.device)
        check_regressor_fits(reg, r.regressor, ckpt, r.checkpoint)
        prepared.regressor = reg.build_model(r.device)
        if r.unconditional_checkpoint is not None:
            unc = load_checkpoint(r.unconditional_checkpoint, map_location=r.device)
            check_unconditional_fits(unc, r.unconditional_checkpoint, ckpt, r.checkpoint)
            prepared.unconditional_model = unc.build_model(use_ema=r.use_ema, device=r.device)
    elif r.unconditional_checkpoint is not None:
        raise field_error(InvalidRecordError, "{unconditional_checkpoint} is only used with {guidance} classifier")
    if r.mask_classifier_gradients and guidance != "classifier":
        raise field_error(InvalidRecordError, "{mask_classifier_gradients} is only used with {guidance} classifier")
    return prepared
