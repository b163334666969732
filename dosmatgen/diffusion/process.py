"""The joint diffusion over atom types A, fractional coordinates X and lattice L.

Conventions used by every method here:

* ``t`` is an integer diffusion step in 1..T (T = ``config.num_steps``); a Python int, a 0-d tensor or a (B,)
  long tensor with one step per crystal. Tables are indexed by t directly (index 0 = clean data).
* The network's ``coord_score`` is the *normalised* true score ∇log q / sqrt(σ_norm(t)); the steps below
  multiply it by sqrt(σ_norm(t)) themselves, so pass the raw network output.
* ``lattice_eps`` / ``type_eps`` are DDPM ε predictions.
* All steps are pure functions of tensors: they never draw random numbers; the caller passes standard-normal
  noise (:class:`~dosmatgen.diffusion.state.StateNoise`), which makes sampling reproducible under a seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch

from dosmatgen.diffusion.loss import LossTerms, LossWeights, joint_loss
from dosmatgen.diffusion.noising import (
    atomic_numbers_to_one_hot,
    coordinate_score_target,
    ddpm_noise,
    wrapped_noise,
)
from dosmatgen.diffusion.schedules import BetaSchedule, SigmaSchedule, reverse_steps
from dosmatgen.diffusion.state import CrystalState, StateNoise


@dataclass(frozen=True)
class DiffusionConfig:
    """Schedules and loss weights. Defaults are the paper's (T = 1000, cosine s = 0.008, σ 0.005..0.5, λ 20/1/1)."""

    num_steps: int = 1000
    cosine_s: float = 0.008
    beta_min: float = 1e-4
    beta_max: float = 0.9999
    sigma_begin: float = 0.005
    sigma_end: float = 0.5
    lambda_types: float = 20.0
    lambda_coords: float = 1.0
    lambda_lattice: float = 1.0
    num_classes: int = 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DiffusionConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown diffusion config keys: {sorted(unknown)}")
        return cls(**dict(d))

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(types=self.lambda_types, coords=self.lambda_coords, lattice=self.lambda_lattice)


@dataclass(frozen=True)
class PredictorScales:
    """Per-crystal step sizes of one predictor step at t (each (B,)), e.g. for classifier guidance.

    * ``coord_step``: σ_t² - σ_{t-1}² (the reverse-VE drift multiplier of the coordinate score).
    * ``coord_std``, ``lattice_std``, ``type_std``: standard deviations of the injected noise.
    """

    coord_step: torch.Tensor
    coord_std: torch.Tensor
    lattice_std: torch.Tensor
    type_std: torch.Tensor


class JointDiffusion:
    """Holds the schedules (float32 tables on ``device``) and implements the forward process, the training loss
    and the reverse-step primitives of the predictor–corrector sampler.

    ``sampling_steps`` (S, None = T) is the reverse-time grid the sampler walks: S evenly spaced kept steps of
    1..T with jumps between them (:func:`~dosmatgen.diffusion.schedules.reverse_steps`). It changes sampling
    only, never training or the forward process, and is not part of the (checkpointed) config.
    """

    def __init__(self, config: DiffusionConfig | None = None, device: torch.device | str = "cpu",
                 sampling_steps: int | None = None) -> None:
        self.config = config or DiffusionConfig()
        c = self.config
        self.betas64 = BetaSchedule.cosine(c.num_steps, c.cosine_s, c.beta_min, c.beta_max)
        self.sigmas64 = SigmaSchedule.geometric(c.num_steps, c.sigma_begin, c.sigma_end)
        self.sampling_steps = self._checked_sampling_steps(sampling_steps)
        self.device = torch.device("cpu")
        self.to(device)

    def _checked_sampling_steps(self, sampling_steps: int | None) -> int | None:
        if sampling_steps is None:
            return None
        if isinstance(sampling_steps, bool) or int(sampling_steps) != sampling_steps or not 1 <= int(sampling_steps) <= self.num_steps:
            raise ValueError(f"sampling steps must be an integer in 1..{self.num_steps}, got {sampling_steps!r}")
        return int(sampling_steps)

    def with_sampling_steps(self, sampling_steps: int | None) -> "JointDiffusion":
        """The same diffusion (config, device) sampled on S = ``sampling_steps`` kept steps (None: all T)."""
        return JointDiffusion(self.config, self.device, sampling_steps)

    def reverse_steps(self, t_start: int) -> list[int]:
        """The steps a reverse run from ``t_start`` visits, descending to 0 (every step when sampling_steps is None)."""
        return reverse_steps(self.num_steps, self.sampling_steps, t_start)

    # ------------------------------------------------------------------ tables
    def to(self, device: torch.device | str) -> "JointDiffusion":
        self.device = torch.device(device)
        f = lambda x: x.to(device=self.device, dtype=torch.float32)  # noqa: E731
        self.betas = f(self.betas64.betas)
        self.alphas = f(self.betas64.alphas)
        self.alpha_bars = f(self.betas64.alpha_bars)
        self.posterior_sigmas = f(self.betas64.posterior_sigmas)
        self.sigmas = f(self.sigmas64.sigmas)
        self.sigma_norms = f(self.sigmas64.sigma_norms)
        b = self.betas64
        self._betas64_device = BetaSchedule(*(x.to(self.device) for x in (b.betas, b.alphas, b.alpha_bars, b.posterior_sigmas)))
        return self

    @property
    def num_steps(self) -> int:
        return self.config.num_steps

    def _steps(self, t: int | torch.Tensor, num_crystals: int) -> torch.Tensor:
        """t as a (B,) long tensor on the diffusion device, checked to lie in 1..T."""
        tt = torch.as_tensor(t, dtype=torch.long, device=self.device)
        if tt.dim() == 0:
            tt = tt.expand(num_crystals)
        if tt.shape != (num_crystals,):
            raise ValueError(f"t must be a scalar or have shape ({num_crystals},), got {tuple(tt.shape)}")
        if int(tt.min()) < 1 or int(tt.max()) > self.num_steps:
            raise ValueError(f"t must lie in 1..{self.num_steps}, got {int(tt.min())}..{int(tt.max())}")
        return tt

    # ------------------------------------------------------------------ states
    def clean_state(self, batch) -> CrystalState:
        """The clean state S_0 of a torch_geometric batch (``atom_types`` as Z is turned into a one-hot)."""
        return CrystalState(
            atom_types=atomic_numbers_to_one_hot(batch.atom_types, self.config.num_classes),
            frac_coords=batch.frac_coords.float(),
            lattice=batch.lattice.float().reshape(-1, 3, 3),
            batch=batch.batch,
            num_atoms=batch.num_atoms.long(),
        )

    def prior_sample(self, num_atoms: torch.Tensor, generator: torch.Generator | None = None) -> CrystalState:
        """S_T drawn from the priors: A_T, L_T ~ N(0, I), X_T ~ U[0, 1). ``num_atoms`` (B,) long."""
        num_atoms = num_atoms.to(self.device).long()
        n, b = int(num_atoms.sum()), num_atoms.numel()
        g = dict(generator=generator, device=self.device)
        return CrystalState(
            atom_types=torch.randn(n, self.config.num_classes, **g),
            frac_coords=torch.rand(n, 3, **g),
            lattice=torch.randn(b, 3, 3, **g),
            batch=torch.repeat_interleave(torch.arange(b, device=self.device), num_atoms),
            num_atoms=num_atoms,
        )

    def sample_timesteps(self, num_crystals: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B,) long, uniform in 1..T, one per crystal."""
        return torch.randint(1, self.num_steps + 1, (num_crystals,), generator=generator, device=self.device)

    def q_sample(self, clean: CrystalState, t: int | torch.Tensor, noise: StateNoise) -> CrystalState:
        """S_t ~ q(S_t | S_0): DDPM for L and A, wrapped VE ``(x_0 + σ_t ε) mod 1`` for X."""
        tt = self._steps(t, clean.num_crystals)
        abar = self.alpha_bars[tt]
        sigma_atoms = self.sigmas[tt][clean.batch].unsqueeze(-1)
        return clean.replace(
            lattice=ddpm_noise(clean.lattice, abar.view(-1, 1, 1), noise.lattice),
            atom_types=ddpm_noise(clean.atom_types, abar[clean.batch].unsqueeze(-1), noise.atom_types),
            frac_coords=wrapped_noise(clean.frac_coords, sigma_atoms, noise.frac_coords),
        )

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        model,
        batch,
        cond=None,
        t: torch.Tensor | None = None,
        noise: StateNoise | None = None,
        generator: torch.Generator | None = None,
        atom_scale: float = 1.0,
    ) -> LossTerms:
        """The joint loss of ``model`` on a clean batch: draws t (uniform 1..T per crystal) and noise unless given,
        noises the batch, runs the model once (with condition ``cond``, a DOSCondition or None). ``atom_scale``:
        see :func:`~dosmatgen.diffusion.loss.joint_loss`."""
        clean = self.clean_state(batch)
        if t is None:
            t = self.sample_timesteps(clean.num_crystals, generator)
        tt = self._steps(t, clean.num_crystals)
        if noise is None:
            noise = StateNoise.randn_like(clean, generator)
        noisy = self.q_sample(clean, tt, noise)
        pred = model(noisy.atom_types, noisy.frac_coords, noisy.lattice, tt, noisy.batch, cond, noisy.num_atoms)
        sigma_atoms = self.sigmas[tt][clean.batch].unsqueeze(-1)
        norm_atoms = self.sigma_norms[tt][clean.batch].unsqueeze(-1)
        target_x = coordinate_score_target(sigma_atoms, noise.frac_coords, norm_atoms)
        return joint_loss(
            pred.lattice_eps, pred.coord_score, pred.type_eps, noise.lattice, target_x, noise.atom_types,
            self.config.loss_weights, atom_scale,
        )

    # ------------------------------------------------------------------ reverse steps
    def coord_score(self, coord_output: torch.Tensor, t: int | torch.Tensor, state: CrystalState) -> torch.Tensor:
        """Un-normalise the network's coordinate output: (N, 3) ∇log q(x_t) = output · sqrt(σ_norm(t))."""
        tt = self._steps(t, state.num_crystals)
        return coord_output * self.sigma_norms[tt][state.batch].sqrt().unsqueeze(-1)

    def _previous(self, tt: torch.Tensor, t_prev: int | torch.Tensor | None) -> torch.Tensor:
        """The step s each crystal jumps to from ``tt`` (B,): t − 1 when ``t_prev`` is None; checked 0 <= s < t."""
        if t_prev is None:
            return tt - 1
        ss = torch.as_tensor(t_prev, dtype=torch.long, device=self.device)
        if ss.dim() == 0:
            ss = ss.expand(tt.shape[0])
        if ss.shape != tt.shape or int(ss.min()) < 0 or bool((ss >= tt).any()):
            raise ValueError(f"t_prev must have shape {tuple(tt.shape)} and satisfy 0 <= t_prev < t")
        return ss

    def _ddpm_transition(self, tt: torch.Tensor, ss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """float32 (α_{t|s}, β_{t|s}, posterior σ) per crystal; the one-step tables exactly where s = t − 1."""
        alpha, beta, post = self._betas64_device.transition(tt, ss)
        return alpha.float(), beta.float(), post.float()

    def predictor_scales(self, t: int | torch.Tensor, num_crystals: int, t_prev: int | torch.Tensor | None = None) -> PredictorScales:
        """Drift and noise scales of :meth:`predictor_step` from t to ``t_prev`` (default t − 1), each (B,)."""
        tt = self._steps(t, num_crystals)
        ss = self._previous(tt, t_prev)
        s_t, s_prev = self.sigmas[tt], self.sigmas[ss]
        step = s_t**2 - s_prev**2
        coord_std = torch.sqrt(s_prev**2 * step / s_t**2)
        post = self._ddpm_transition(tt, ss)[2]
        return PredictorScales(coord_step=step, coord_std=coord_std, lattice_std=post, type_std=post)

    def predictor_step(self, state: CrystalState, prediction, t: int | torch.Tensor, noise: StateNoise,
                       t_prev: int | torch.Tensor | None = None) -> CrystalState:
        """One reverse step S_t -> S_s for all three fields, s = ``t_prev`` (default t − 1; any 0 <= s < t for
        fewer-step sampling).

        * X (reverse VE, DiffCSP): ``x' = (x + (σ_t² - σ_s²)·score + sqrt(σ_s²(σ_t² - σ_s²)/σ_t²)·z) mod 1``
          with ``score = prediction.coord_score · sqrt(σ_norm(t))``.
        * L and A (ancestral DDPM, Eq. A2–A4, with the jump's α_{t|s} = ᾱ_t/ᾱ_s and β_{t|s} = 1 − α_{t|s}):
          ``y' = (y - β_{t|s}/sqrt(1-ᾱ_t)·ε̂)/sqrt(α_{t|s}) + σ_post(t|s)·z``. For s = t − 1 these are the stored
          one-step tables, bit for bit.

        Args:
            state: S_t. prediction: a DenoiserOutput evaluated on ``state`` at t (already CFG-combined if wanted).
            t: step in 1..T (scalar or (B,)). noise: standard normal draws; at s = 0 every noise scale is 0.
            t_prev: the step jumped to (scalar or (B,)); None = t − 1.
        Returns:
            S_s with coordinates wrapped into [0, 1).
        """
        tt = self._steps(t, state.num_crystals)
        ss = self._previous(tt, t_prev)
        scales = self.predictor_scales(tt, state.num_crystals, ss)
        atom = state.batch
        score = self.coord_score(prediction.coord_score, tt, state)
        x = state.frac_coords + scales.coord_step[atom].unsqueeze(-1) * score
        x = torch.remainder(x + scales.coord_std[atom].unsqueeze(-1) * noise.frac_coords, 1.0)

        alpha, beta, _ = self._ddpm_transition(tt, ss)
        c0 = 1.0 / alpha.sqrt()
        c1 = beta / (1 - self.alpha_bars[tt]).sqrt()
        lat = c0.view(-1, 1, 1) * (state.lattice - c1.view(-1, 1, 1) * prediction.lattice_eps)
        lat = lat + scales.lattice_std.view(-1, 1, 1) * noise.lattice
        types = c0[atom].unsqueeze(-1) * (state.atom_types - c1[atom].unsqueeze(-1) * prediction.type_eps)
        types = types + scales.type_std[atom].unsqueeze(-1) * noise.atom_types
        return state.replace(frac_coords=x, lattice=lat, atom_types=types)

    def corrector_step(
        self,
        state: CrystalState,
        coord_output: torch.Tensor,
        t: int | torch.Tensor,
        step_lr: float,
        noise: torch.Tensor,
    ) -> CrystalState:
        """One Langevin corrector step on X only (L and A unchanged).

        ``step = step_lr · (σ_t/σ_1)²``; ``x' = (x + step·score + sqrt(2·step)·z) mod 1`` with
        ``score = coord_output · sqrt(σ_norm(t))``. ``coord_output`` (N, 3) is the network's coordinate output on
        ``state`` at t; ``noise`` (N, 3) standard normal (DiffCSP passes zeros at t = 1).
        """
        tt = self._steps(t, state.num_crystals)
        step = step_lr * (self.sigmas[tt] / self.sigmas[1]) ** 2
        step_atoms = step[state.batch].unsqueeze(-1)
        score = self.coord_score(coord_output, tt, state)
        x = state.frac_coords + step_atoms * score + torch.sqrt(2 * step_atoms) * noise
        return state.replace(frac_coords=torch.remainder(x, 1.0))
