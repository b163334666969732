"""Training: the engine every model runs on, and the denoiser's condition dropout, train step, checkpoints and task."""

from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint
from dosmatgen.training.condition_dropout import ConditionDropoutConfig, apply_condition_dropout
from dosmatgen.training.config import DataConfig, RunConfig, TrainConfig, load_run_config
from dosmatgen.training.distributed import DistributedHooks, SingleProcess
from dosmatgen.training.engine import EngineResult, EngineSettings, StepLoss, TrainingTask, run_training
from dosmatgen.training.step import evaluate_loss, train_step, training_condition
from dosmatgen.training.trainer import TrainResult, train

__all__ = [
    "ConditionDropoutConfig", "DataConfig", "DenoiserCheckpoint", "DistributedHooks", "EngineResult", "EngineSettings",
    "RunConfig", "SingleProcess", "StepLoss", "TrainConfig", "TrainResult", "TrainingTask", "apply_condition_dropout",
    "evaluate_loss", "load_checkpoint", "load_run_config", "run_training", "save_checkpoint", "train", "train_step",
    "training_condition",
]
