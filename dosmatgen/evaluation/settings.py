"""Settings of one evaluation run (the reconstruction protocol of the DOSMatGen paper, Tables 1 and 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dosmatgen.errors import InvalidRecordError
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH
from dosmatgen.metrics.timed_matcher import DEFAULT_TIMEOUT_S

#: Guidance modes of the protocol. ``none`` = one conditional denoiser pass per step (w = 0, no guidance term);
#: ``uncond`` = the same model with the condition masked out on every site (the unconditioned baseline).
GUIDANCE_MODES = ("cfg", "classifier", "none", "uncond")
#: Negative controls of the condition (``condition_control``): ``none`` feeds every structure its own site DOS;
#: ``masked`` masks the condition out in EVERY mode (cfg, none and classifier then see no DOS, so every
#: conditioning-sensitive acceptance criterion must fail); ``shuffled`` conditions each site on the DOS of a site
#: of another structure (a seeded derangement of all sites).
CONDITION_CONTROLS = ("none", "masked", "shuffled")
#: The paper's template noise levels (T = 1000: from noise with the true atom count).
PAPER_T_STARTS = (200, 500, 1000)


@dataclass(frozen=True)
class EvaluationSettings:
    """What one ``dosmatgen evaluate`` run does.

    * ``split``: the store split whose structures are reconstructed (default "test").
    * ``t_starts``: diffusion steps (1..T) the true structure is noised to before denoising; T = from the prior.
    * ``guidance``: any of :data:`GUIDANCE_MODES`, in order.
    * ``limit``: at most this many structures of the split (a seeded random subset); None = all of them.
    * ``seed``: selects the subset and seeds the sampler (batch k of t_start t uses ``shard_seed(seed, "reconstruct-t{t}", k)``,
      so every guidance mode starts from the same noised templates).
    * ``step_lr``: Langevin corrector step on X (0 disables it); ``w``: CFG weight; ``strength``: classifier-guidance scale.
    * ``sampling_steps``: S kept steps of the T-step reverse grid (None = all T; docs/sampling-steps.md).
    * ``batch_size``: structures per sampler batch; ``match_timeout_s``: StructureMatcher time limit per comparison (s).
    * ``novelty``: also compare every valid generated structure against the training split.
    * ``relax``: MLFF formation energies (relaxed and unrelaxed) of generated and ground-truth structures with
      ``relax_mlff``, at most ``relax_max_steps`` FIRE steps to ``relax_fmax`` eV/Å.
    * ``n_examples``: DOS comparison panels per setting; ``force_split``: evaluate even on the training split.
    * ``condition_control``: one of :data:`CONDITION_CONTROLS` (negative controls; default ``none``).
    """

    split: str = "test"
    t_starts: tuple[int, ...] = PAPER_T_STARTS
    guidance: tuple[str, ...] = GUIDANCE_MODES
    limit: int | None = None
    seed: int = 0
    step_lr: float = 5e-6
    sampling_steps: int | None = None
    w: float = 1.0
    strength: float = DEFAULT_CLASSIFIER_STRENGTH
    batch_size: int = 32
    match_timeout_s: float | None = DEFAULT_TIMEOUT_S
    novelty: bool = True
    relax: bool = False
    relax_mlff: str = "chgnet"
    relax_fmax: float = 0.05
    relax_max_steps: int = 300
    n_examples: int = 4
    force_split: bool = False
    use_ema: bool = True
    device: str = "cpu"
    condition_control: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "t_starts", tuple(int(t) for t in self.t_starts))
        object.__setattr__(self, "guidance", tuple(str(g) for g in self.guidance))

    def validate(self, num_steps: int) -> None:
        """InvalidRecordError for any setting that cannot run with a diffusion of ``num_steps`` steps."""
        if not self.t_starts:
            raise InvalidRecordError("--t-start needs at least one value")
        bad = [t for t in self.t_starts if not 1 <= t <= num_steps]
        if bad:
            raise InvalidRecordError(f"--t-start {bad} outside 1..{num_steps} (the checkpoint's diffusion has T = {num_steps} steps)")
        if len(set(self.t_starts)) != len(self.t_starts):
            raise InvalidRecordError(f"--t-start values repeat: {list(self.t_starts)}")
        if not self.guidance:
            raise InvalidRecordError("--guidance needs at least one mode")
        unknown = [g for g in self.guidance if g not in GUIDANCE_MODES]
        if unknown:
            raise InvalidRecordError(f"--guidance {unknown}: choose from {', '.join(GUIDANCE_MODES)}")
        if len(set(self.guidance)) != len(self.guidance):
            raise InvalidRecordError(f"--guidance values repeat: {list(self.guidance)}")
        if self.limit is not None and self.limit < 1:
            raise InvalidRecordError(f"--limit must be >= 1, got {self.limit}")
        if self.seed < 0:
            raise InvalidRecordError(f"--seed must be >= 0, got {self.seed}")
        if self.step_lr < 0:
            raise InvalidRecordError(f"--step-lr must be >= 0, got {self.step_lr}")
        if self.sampling_steps is not None and not 1 <= self.sampling_steps <= num_steps:
            raise InvalidRecordError(f"--sampling-steps must lie in 1..{num_steps}, got {self.sampling_steps}")
        if self.batch_size < 1:
            raise InvalidRecordError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.match_timeout_s is not None and self.match_timeout_s <= 0:
            raise InvalidRecordError(f"--match-timeout must be > 0 s, got {self.match_timeout_s}")
        if self.condition_control not in CONDITION_CONTROLS:
            raise InvalidRecordError(f"--condition-control {self.condition_control!r}: choose from {', '.join(CONDITION_CONTROLS)}")
        if self.n_examples < 0:
            raise InvalidRecordError(f"--examples must be >= 0, got {self.n_examples}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["t_starts"] = list(self.t_starts)
        d["guidance"] = list(self.guidance)
        return d
