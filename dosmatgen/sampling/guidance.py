"""Guidance strategies plugged into the one predictor–corrector loop (:mod:`dosmatgen.sampling.sampler`).

A strategy decides (1) how the denoiser's prediction at step t is obtained (``predict``) and (2) whether the
proposed next state is moved further (``adjust``, used by classifier guidance):

* :class:`NoGuidance` — one plain forward pass with the condition as given (or unconditional when None);
* :class:`ClassifierFreeGuidance` — ``(1 + w)·ε_cond − w·ε_uncond`` for all three fields, both halves in ONE
  batched forward call (the batch concatenated with itself; the second half has every condition masked out);
* :class:`ClassifierGuidance` — the unconditional score (the CFG model with every condition dropped, or a separate
  unconditional model) plus a step down the gradient of ``Σ_i ‖ŷ_i − y_i‖`` (per conditioned site) of a
  time-dependent DOS regressor (:mod:`dosmatgen.regressor`), scaled by each field's noise variance (DiffCSP-style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from dosmatgen.diffusion.process import PredictorScales
from dosmatgen.diffusion.state import CrystalState
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH
from dosmatgen.model.conditioning import DOSCondition
from dosmatgen.model.cspnet import DenoiserOutput


def call_denoiser(model: nn.Module, state: CrystalState, t: torch.Tensor, cond: DOSCondition | None) -> DenoiserOutput:
    """One forward pass of the denoiser on ``state`` at steps ``t`` (B,)."""
    return model(state.atom_types, state.frac_coords, state.lattice, t, state.batch, cond, state.num_atoms)


def doubled_state(state: CrystalState) -> CrystalState:
    """The batch concatenated with itself (2B crystals, 2N atoms); crystal b + B is a copy of crystal b."""
    b = state.num_crystals
    return CrystalState(
        atom_types=torch.cat([state.atom_types, state.atom_types]),
        frac_coords=torch.cat([state.frac_coords, state.frac_coords]),
        lattice=torch.cat([state.lattice, state.lattice]),
        batch=torch.cat([state.batch, state.batch + b]),
        num_atoms=torch.cat([state.num_atoms, state.num_atoms]),
    )


def conditioned_and_dropped(cond: DOSCondition) -> DOSCondition:
    """Rows of ``cond`` followed by the same rows with mask 0 (the unconditional half of a CFG batch)."""
    window = None if cond.window is None else torch.cat([cond.window, cond.window])
    return DOSCondition(
        dos=torch.cat([cond.dos, cond.dos]), mask=torch.cat([cond.mask, torch.zeros_like(cond.mask)]), window=window
    )


def combine_cfg(cond: torch.Tensor, uncond: torch.Tensor, w: float) -> torch.Tensor:
    """``(1 + w)·cond − w·uncond`` (w = 0: the conditional prediction exactly; MatterGen's γ = w + 1)."""
    if w == 0:
        return cond
    return (1.0 + w) * cond - w * uncond


class Guidance(Protocol):
    """What the sampler needs from a guidance strategy."""

    def predict(self, model: nn.Module, state: CrystalState, t: torch.Tensor, cond: DOSCondition | None) -> DenoiserOutput:
        """The (combined) prediction at state S_t, steps t (B,)."""

    def adjust(
        self, current: CrystalState, proposed: CrystalState, t: torch.Tensor, scales: PredictorScales,
        cond: DOSCondition | None,
    ) -> CrystalState:
        """Move the proposed S_{t-1} (from the predictor) given S_t; return it unchanged for no extra move."""


class NoGuidance:
    """One forward pass with the condition as given (None: the unconditional model)."""

    name = "none"

    def predict(self, model, state, t, cond):
        return call_denoiser(model, state, t, cond)

    def adjust(self, current, proposed, t, scales, cond):
        return proposed


@dataclass
class ClassifierFreeGuidance:
    """``(1 + w)·ε_cond − w·ε_uncond`` on coordinate score, lattice ε and type ε; default w = 1 (the paper's).

    Both passes run as ONE forward call on a doubled batch (first half conditioned, second half with mask 0).
    """

    w: float = 1.0
    name: str = "cfg"

    def predict(self, model, state, t, cond):
        if cond is None:
            raise ValueError("classifier-free guidance needs a condition")
        b, n = state.num_crystals, state.atom_types.shape[0]
        out = call_denoiser(model, doubled_state(state), torch.cat([t, t]), conditioned_and_dropped(cond))
        return DenoiserOutput(
            coord_score=combine_cfg(out.coord_score[:n], out.coord_score[n:], self.w),
            lattice_eps=combine_cfg(out.lattice_eps[:b], out.lattice_eps[b:], self.w),
            type_eps=combine_cfg(out.type_eps[:n], out.type_eps[n:], self.w),
        )

    def adjust(self, current, proposed, t, scales, cond):
        return proposed


@dataclass
class TwoPassClassifierFreeGuidance(ClassifierFreeGuidance):
    """The same combination as :class:`ClassifierFreeGuidance` with two separate forward calls (for benchmarks)."""

    name: str = "cfg-two-pass"

    def predict(self, model, state, t, cond):
        c = call_denoiser(model, state, t, cond)
        u = call_denoiser(model, state, t, cond.dropped())
        return DenoiserOutput(
            coord_score=combine_cfg(c.coord_score, u.coord_score, self.w),
            lattice_eps=combine_cfg(c.lattice_eps, u.lattice_eps, self.w),
            type_eps=combine_cfg(c.type_eps, u.type_eps, self.w),
        )


@dataclass
class ClassifierGuidance:
    """Unconditional score + regressor guidance toward a target DOS (paper Eq. 2).

    At each predictor step the regressor g(S_t, t) predicts the scaled site DOS ŷ (N, D) of the state after the
    corrector, and the proposed S_{t-1} moves by ``−strength · v · ∇E`` with

    * the guidance energy ``E = Σ_i ‖(ŷ_i − y_i)·window_i‖₂``: the L2 norm over the DOS bins of each conditioned
      site i (``cond.mask``), summed over sites and crystals, as in the reference DOSMatGen code. Every conditioned
      site therefore pulls with a unit-norm gradient direction in DOS space, whatever the number of conditioned
      sites (one L2 norm per crystal would give each of n sites about 1/√n of that pull);
    * ``v`` the variance of the noise the predictor injects into that field at t (DiffCSP's guided sampler):
      X ``σ_{t−1}²(σ_t² − σ_{t−1}²)/σ_t²`` (``PredictorScales.coord_std²``), L and A the DDPM posterior variance.

    Strength convention: ``strength`` is DiffCSP's ``aug`` (:data:`DEFAULT_CLASSIFIER_STRENGTH` = 5 by default) multiplying that per-site-summed energy
    with unscaled variances, so the same strength means the same per-site pull for any crystal size; the displacement
    of a field is ``strength · v · ∂E/∂field``.

    ``mask_gradients`` zeroes the A and X gradients of the atoms that are not conditioned (DiffCSP's masked
    variant): unconditioned atoms then follow the unconditional model only, while the lattice still moves. With every
    site conditioned (the evaluation protocol) it changes nothing.

    Args:
        regressor: a :class:`~dosmatgen.regressor.model.NoisyDOSRegressor` (eval mode).
        strength: the guidance scale (DiffCSP's ``aug``; :data:`DEFAULT_CLASSIFIER_STRENGTH` by default).
        unconditional_model: a separately trained denoiser for the unconditional score
            (``bundled:dosmatgen-small-uncond``); None uses the sampler's (CFG-trained) model with every condition
            dropped.
        mask_gradients: guide only the conditioned atoms' types and coordinates (see above).
    """

    regressor: nn.Module
    strength: float = DEFAULT_CLASSIFIER_STRENGTH
    unconditional_model: nn.Module | None = None
    mask_gradients: bool = False
    name: str = "classifier"

    def predict(self, model, state, t, cond):
        source = self.unconditional_model if self.unconditional_model is not None else model
        uses_cond = getattr(getattr(source, "config", None), "cond_mode", "none") != "none"
        return call_denoiser(source, state, t, cond.dropped() if (cond is not None and uses_cond) else None)

    def adjust(self, current, proposed, t, scales, cond):
        if cond is None:
            raise ValueError("classifier guidance needs a target condition")
        grads = regressor_gradients(self.regressor, current, t, cond)
        atom = current.batch
        if self.mask_gradients:
            keep = cond.mask.to(grads.atom_types.dtype).unsqueeze(-1)
            grads = CrystalState(grads.atom_types * keep, grads.frac_coords * keep, grads.lattice, atom, current.num_atoms)
        s = self.strength
        x = proposed.frac_coords - s * (scales.coord_std[atom] ** 2).unsqueeze(-1) * grads.frac_coords
        lat = proposed.lattice - s * (scales.lattice_std**2).view(-1, 1, 1) * grads.lattice
        types = proposed.atom_types - s * (scales.type_std[atom] ** 2).unsqueeze(-1) * grads.atom_types
        return proposed.replace(frac_coords=torch.remainder(x, 1.0), lattice=lat, atom_types=types)


def regressor_distance(regressor: nn.Module, state: CrystalState, t: torch.Tensor, cond: DOSCondition) -> torch.Tensor:
    """(B,) guidance energy per crystal: ``Σ_i ‖(ŷ_i − y_i)·window_i‖₂`` over its conditioned sites i (per-site L2
    norm over the DOS bins, summed over the sites; unconditioned sites contribute 0)."""
    pred = regressor(state.atom_types, state.frac_coords, state.lattice, t, state.batch, state.num_atoms)
    diff = (pred - cond.dos) * cond.full_window()
    per_site = torch.sqrt((diff**2).sum(-1) + 1e-12) * cond.mask.to(pred.dtype)
    per_crystal = torch.zeros(state.num_crystals, dtype=pred.dtype, device=pred.device)
    return per_crystal.index_add(0, state.batch, per_site)


def regressor_gradients(regressor: nn.Module, state: CrystalState, t: torch.Tensor, cond: DOSCondition) -> CrystalState:
    """Gradients of the guidance energy Σ_i ‖ŷ_i − y_i‖ (:func:`regressor_distance`) with respect to the noisy
    A, X and L, as a CrystalState of gradients."""
    with torch.enable_grad():
        a = state.atom_types.detach().requires_grad_(True)
        x = state.frac_coords.detach().requires_grad_(True)
        lat = state.lattice.detach().requires_grad_(True)
        probe = state.replace(atom_types=a, frac_coords=x, lattice=lat)
        loss = regressor_distance(regressor, probe, t, cond).sum()
        ga, gx, gl = torch.autograd.grad(loss, (a, x, lat))
    return CrystalState(ga, gx, gl, state.batch, state.num_atoms)
