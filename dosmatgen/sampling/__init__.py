"""Sampling: ONE predictor–corrector loop (:mod:`~dosmatgen.sampling.sampler`) with pluggable modes.

* start: :func:`~dosmatgen.sampling.start.prior_start` (t = T) or :func:`~dosmatgen.sampling.start.template_start`
  (a template noised to t_start < T);
* condition: :func:`~dosmatgen.sampling.condition.site_condition` (chosen sites, per-atom mask, energy window);
* guidance: :class:`~dosmatgen.sampling.guidance.NoGuidance`, :class:`~dosmatgen.sampling.guidance.ClassifierFreeGuidance`
  (one batched forward call), :class:`~dosmatgen.sampling.guidance.ClassifierGuidance` (time-dependent regressor);
* constraints: :class:`~dosmatgen.sampling.constraints.FixedTypes`;
* atom counts: :class:`~dosmatgen.sampling.num_atoms.NumAtomsSpec`.

:mod:`~dosmatgen.sampling.request` validates a CLI request before sampling; :mod:`~dosmatgen.sampling.generate`
runs it in batches; :mod:`~dosmatgen.sampling.outputs` writes CIF zip, extxyz and the run store.
"""

from dosmatgen.sampling.condition import site_condition, window_mask
from dosmatgen.sampling.constraints import FixedTypes
from dosmatgen.sampling.guidance import ClassifierFreeGuidance, ClassifierGuidance, NoGuidance
from dosmatgen.sampling.num_atoms import NumAtomsSpec
from dosmatgen.sampling.sampler import PredictorCorrectorSampler, SamplingOutput
from dosmatgen.sampling.start import SamplingStart, prior_start, template_start
from dosmatgen.sampling.trajectory import Trajectory

__all__ = [
    "ClassifierFreeGuidance", "ClassifierGuidance", "FixedTypes", "NoGuidance", "NumAtomsSpec",
    "PredictorCorrectorSampler", "SamplingOutput", "SamplingStart", "Trajectory", "prior_start", "site_condition",
    "template_start", "window_mask",
]
