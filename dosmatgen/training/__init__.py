"""Training of the denoiser: condition dropout, the train step, checkpoints and the training loop."""

from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint
from dosmatgen.training.condition_dropout import ConditionDropoutConfig, apply_condition_dropout
from dosmatgen.training.config import DataConfig, RunConfig, TrainConfig, load_run_config
from dosmatgen.training.step import evaluate_loss, train_step, training_condition
from dosmatgen.training.trainer import TrainResult, train

__all__ = [
    "ConditionDropoutConfig", "DataConfig", "DenoiserCheckpoint", "RunConfig", "TrainConfig", "TrainResult",
    "apply_condition_dropout", "evaluate_loss", "load_checkpoint", "load_run_config", "save_checkpoint", "train",
    "train_step", "training_condition",
]
