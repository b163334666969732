"""Joint diffusion over atom types (DDPM on one-hot), fractional coordinates (wrapped VE) and lattice (DDPM)."""

from dosmatgen.diffusion.loss import LossTerms, LossWeights, joint_loss
from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion, PredictorScales
from dosmatgen.diffusion.schedules import BetaSchedule, SigmaSchedule
from dosmatgen.diffusion.state import CrystalState, StateNoise

__all__ = [
    "BetaSchedule", "CrystalState", "DiffusionConfig", "JointDiffusion", "LossTerms", "LossWeights",
    "PredictorScales", "SigmaSchedule", "StateNoise", "joint_loss",
]
