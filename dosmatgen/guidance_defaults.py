"""Guidance defaults shared by the sampler, the evaluation protocol and the CLI (importable without torch)."""

from __future__ import annotations

#: Default classifier-guidance strength (DiffCSP's ``aug``) under the per-site energy convention of
#: :class:`dosmatgen.sampling.guidance.ClassifierGuidance` (E = Σᵢ‖ŷᵢ − yᵢ‖). Chosen on the validation split
#: (reports/evaluation-issue19 part E): 5 is best at t_start 1000 and within the intervals of 10 and 20 at 200.
#: DiffCSP's 50 was tuned for one norm per crystal and is about 10x too strong under the per-site convention.
DEFAULT_CLASSIFIER_STRENGTH: float = 5.0
