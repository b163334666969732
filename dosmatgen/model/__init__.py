"""The DOSMatGen denoiser: a periodic E(3)-invariant message-passing network of the CSPNet family."""

from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.conditioning import DOSCondition, condition_from_batch
from dosmatgen.model.cspnet import CSPNetDenoiser, DenoiserOutput

__all__ = ["DenoiserConfig", "DOSCondition", "condition_from_batch", "CSPNetDenoiser", "DenoiserOutput"]
