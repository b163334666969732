"""Fine-tuning of the loop's two models on the grown store, from the previous round's weights.

* Denoiser: the training config's model must equal the checkpoint's (``--init-from`` semantics,
  :mod:`dosmatgen.training.warm_start`); ``epochs`` new epochs per round, optimizer afresh, the last epoch's
  weights (EMA) are the round's model. ``backend: ray`` trains with Ray Train DDP through the orchestration
  package's distributed trainer (found by name: :mod:`dosmatgen.plugins`).
* Surrogate: ``train_surrogate`` with ``init_from``; the checkpoint is chosen on the validation split.

Both resume from their own ``train_state.pt`` when a kill interrupted them (the folder holds one).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from dosmatgen.errors import InvalidRecordError
from dosmatgen.loop.config import FineTuneConfig
from dosmatgen.training.train_state import TRAIN_STATE


def _interrupted(out: Path) -> bool:
    return (out / TRAIN_STATE).is_file()


def fine_tune_denoiser(spec: FineTuneConfig, store: str | Path, init_from: str, out: str | Path, *,
                       backend: str = "inline", ray: dict[str, Any] | None = None, progress: bool = False,
                       repeat: Mapping[str, int] | None = None) -> Path:
    """Fine-tune the denoiser; returns the checkpoint the next round samples with. ``repeat``: id -> times the
    structure appears in each training epoch (the loop's weight on its own DFT records)."""
    from dosmatgen.training.config import load_run_config

    out = Path(out)
    config = load_run_config(spec.config)
    training = replace(config.training, epochs=spec.epochs, **({"lr": spec.lr} if spec.lr is not None else {}))
    config = replace(config, training=training, data=replace(config.data, store=str(store)))
    resume = _interrupted(out)
    if backend == "ray":
        from dosmatgen import plugins

        train_to_folder = plugins.lookup(plugins.DISTRIBUTED_TRAINING, "ray")
        r = dict(ray or {})
        train_to_folder(config.to_dict(), str(store), out, num_workers=int(r.get("workers", 2)),
                        use_gpu=bool(r.get("gpu", False)), storage_path=r.get("storage"), address=r.get("address"),
                        resume=resume, init_from=None if resume else init_from,
                        max_failures=int(r.get("max_failures", 2)), repeat=dict(repeat or {}))
        return out / "last.pt"
    if backend != "inline":
        raise InvalidRecordError(f"train.backend: unknown backend {backend!r}")
    from dosmatgen.data.torch_dataset import CrystalDOSDataset
    from dosmatgen.training.trainer import train

    train_ds = CrystalDOSDataset(str(store), config.data.train_split, scaled=True, repeat=repeat)
    val_ds = CrystalDOSDataset(train_ds.store, config.data.val_split, scaled=True) if config.data.val_split else None
    if val_ds is not None and len(val_ds) == 0:
        val_ds = None
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    result = train(config, train_ds, val_ds, out, resume=resume, scalers=train_ds.store.scalers, progress=progress,
                   init_from=None if resume else init_from)
    return result.last_checkpoint


def surrogate_train_config(spec: FineTuneConfig):
    from dosmatgen.surrogate.config import SurrogateTrainConfig

    try:
        d = yaml.safe_load(spec.config.read_text()) or {}
    except yaml.YAMLError as err:
        raise InvalidRecordError(f"not valid YAML ({err})", file=str(spec.config)) from None
    if not isinstance(d, dict):
        raise InvalidRecordError("a surrogate training config must be a mapping", file=str(spec.config))
    d = {**d, "epochs": spec.epochs, "max_minutes": None, **({"lr": spec.lr} if spec.lr is not None else {})}
    try:
        return SurrogateTrainConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise InvalidRecordError(f"bad surrogate training config: {err}", file=str(spec.config)) from None


def fine_tune_surrogate(spec: FineTuneConfig, store: str | Path, init_from: str, out: str | Path, *,
                        repeat: Mapping[str, int] | None = None) -> Path:
    """Fine-tune the DOS surrogate; returns the checkpoint the next round ranks with."""
    from dosmatgen.surrogate.train import train_surrogate

    out = Path(out)
    resume = _interrupted(out)
    result = train_surrogate(store, out, surrogate_train_config(spec), init_from=None if resume else init_from,
                             resume=resume, repeat=repeat)
    return result.checkpoint
