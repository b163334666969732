"""generate_dos: property targets -> per-atom total DOS spectra (DOSSampler stage of the paper's pipeline).

Each round draws a batch: K from the training distribution (restricted to gapped training rows when the targets
imply a gap at E_F, to metallic rows when they imply a metal), prior tokens and forbidden [BG] positions from the
targets (:mod:`priors`), then Algorithm 2 with classifier guidance toward ``dos_ef`` / ``n_ef`` when given, then
the rejection filter. Rounds repeat until ``n`` samples are accepted or ``max_rounds`` batches are drawn.

The returned :class:`GeneratedDos` holds every generated spectrum: the accepted ones first (at most ``n``, in the
order drawn), then the rejected ones; ``accepted`` marks which. Fewer than ``n`` accepted rows means the budget
ran out; nothing is padded or relaxed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.dos.properties import TE_GAP_RANGE_EV
from dosmatgen.dos_sampler.checkpoint import DosSampler, load_dossampler
from dosmatgen.dos_sampler.guidance import Guidance, ShapeGuidance
from dosmatgen.dos_sampler.priors import build_prior
from dosmatgen.dos_sampler.rejection import accept_mask, dos_properties
from dosmatgen.dos_sampler.sampler import SamplingConfig, sample_tokens
from dosmatgen.dos.property_targets import PropertyTargets
from dosmatgen.dos_sampler.tokens import detokenize
from dosmatgen.errors import DosmatgenError

#: Largest batch drawn in one round.
MAX_BATCH = 256
#: Smallest batch drawn in one round (rejection needs a few candidates).
MIN_BATCH = 16
#: Default strength of the shape guidance toward the reference thermoelectric DOS (docs/dos-sampler.md).
SHAPE_GUIDANCE_SCALE = 256.0


@dataclass
class GeneratedDos:
    energies: np.ndarray
    dos: np.ndarray
    accepted: np.ndarray
    properties: dict[str, np.ndarray]


@lru_cache(maxsize=4)
def _cached_sampler(checkpoint: str, device: str) -> DosSampler:
    return load_dossampler(checkpoint, device)


def sample_scales(sampler: DosSampler, targets: PropertyTargets, n: int, rng: np.random.Generator) -> np.ndarray:
    """K per sample, drawn from the training K values (of gapped / metallic rows when the targets say which)."""
    k = sampler.k_values
    gaps = sampler.meta.get("k_band_gap")
    if gaps is not None and (targets.gapped or targets.metallic):
        gaps = np.asarray(gaps)
        pool = k[gaps > 0.1] if targets.gapped else k[gaps <= 0.1]
        if pool.size:
            k = pool
    return rng.choice(k, size=n, replace=True)


def generate_batch(
    sampler: DosSampler,
    targets: PropertyTargets,
    n: int,
    *,
    seed: int,
    guidance_scale: float | None = None,
    sampling: SamplingConfig = SamplingConfig(),
    shape_guidance_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of ``n`` spectra (n, 256) and their K (n,), before rejection. A thermoelectric target adds shape
    guidance toward the reference thermoelectric DOS (``shape_guidance_scale``, default
    :data:`SHAPE_GUIDANCE_SCALE`; 0 turns it off)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    k = sample_scales(sampler, targets, n, rng)
    prior = build_prior(
        targets, n, rng, placement=sampler.gap_placement, gap_offset_ev=float(sampler.meta.get("gap_width_offset_ev", 0.0)),
        te_gap_range=tuple(sampler.meta.get("te_gap_range", TE_GAP_RANGE_EV)), scales=k,
    )
    guidance = None
    scale = sampler.guidance_scale if guidance_scale is None else float(guidance_scale)
    if targets.guided and scale != 0:
        if sampler.regressor is None:
            raise DosmatgenError("this DOSSampler checkpoint has no property regressor; dos_ef / n_ef targets need one")
        guidance = [Guidance(sampler.regressor, targets.guided, scale)]
    shape = SHAPE_GUIDANCE_SCALE if shape_guidance_scale is None else float(shape_guidance_scale)
    if targets.thermoelectric and sampler.reference_te_dos is not None and shape != 0:
        guidance = (guidance or []) + [ShapeGuidance(np.asarray(sampler.reference_te_dos, dtype=np.float32), shape)]
    device = next(sampler.network.parameters()).device
    tokens = sample_tokens(
        sampler.network,
        torch.as_tensor(np.log(k), dtype=torch.float32, device=device),
        torch.as_tensor(prior.tokens, device=device),
        torch.as_tensor(prior.forbid_bg, device=device),
        guidance=guidance,
        config=sampling,
        generator=gen,
        min_value=None if prior.min_value is None else torch.as_tensor(prior.min_value, device=device),
    )
    return detokenize(tokens.cpu().numpy(), k), k


def generate_dos(
    targets: PropertyTargets,
    n: int,
    *,
    checkpoint: str = "bundled:dossampler-small",
    seed: int = 0,
    device: str = "cpu",
    guidance_scale: float | None = None,
    max_rounds: int = 10,
    shape_guidance_scale: float | None = None,
) -> GeneratedDos:
    """Sample per-atom total DOS spectra that meet ``targets``; see the module docstring for the order of rows."""
    if not isinstance(targets, PropertyTargets):
        raise DosmatgenError(f"targets must be a PropertyTargets, got {type(targets).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DosmatgenError(f"n must be a positive integer, got {n!r}")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise DosmatgenError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    sampler = _cached_sampler(str(checkpoint), device)
    if targets.thermoelectric and sampler.reference_te_dos is None:
        raise DosmatgenError(f"checkpoint {checkpoint!r} has no reference thermoelectric DOS")
    batch = int(min(MAX_BATCH, max(MIN_BATCH, n)))
    kept, rest = [], []
    n_acc = 0
    for r in range(max_rounds):
        dos, k = generate_batch(sampler, targets, batch, seed=seed * 1_000_003 + r, guidance_scale=guidance_scale,
                                shape_guidance_scale=shape_guidance_scale)
        ok = accept_mask(dos, targets, sampler.reference_te_dos)
        take = np.flatnonzero(ok)[: n - n_acc]
        kept.append((dos[take], k[take]))
        rest.append((dos[~ok], k[~ok]))
        n_acc += take.size
        if n_acc >= n:
            break
    acc_dos = np.concatenate([d for d, _ in kept])
    rej_dos = np.concatenate([d for d, _ in rest])
    all_dos = np.concatenate([acc_dos, rej_dos])
    props = dos_properties(all_dos) if all_dos.size else {}
    props["scale_k"] = np.concatenate([k for _, k in kept] + [k for _, k in rest]).astype(np.float32)
    accepted = np.zeros(all_dos.shape[0], dtype=bool)
    accepted[: acc_dos.shape[0]] = True
    return GeneratedDos(energies=TOTAL_GRID.energies.copy(), dos=all_dos, accepted=accepted, properties=props)
