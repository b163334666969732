"""The time-dependent DOS regressor g(y | S_t, t) for classifier guidance: model, training and checkpoints."""

from dosmatgen.regressor.checkpoint import RegressorCheckpoint, load_regressor, save_regressor
from dosmatgen.regressor.config import RegressorConfig
from dosmatgen.regressor.model import NoisyDOSRegressor

__all__ = ["NoisyDOSRegressor", "RegressorCheckpoint", "RegressorConfig", "load_regressor", "save_regressor"]
