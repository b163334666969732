"""Distributed training on Ray Train: ``TorchTrainer`` DDP running the library's training engine
(:mod:`dosmatgen.training.engine`) with the denoiser's task on every worker.

* Backend: NCCL on GPUs, gloo on CPU (``ScalingConfig(num_workers, use_gpu)``; Ray Train picks the backend).
  :class:`RayTrainHooks` gives the engine the worker's rank, device and collectives; the collectives run on the
  device of the process group's backend (the worker's GPU under NCCL, CPU under gloo).
* Data: each worker builds the dataset (``dataset_loader``, default: the store's train split) and reads its
  own shard through a ``DistributedSampler`` (drop_last, reshuffled per epoch with (seed, epoch)).
* Model: :func:`dosmatgen.training.trainer.build_model` (same init on every rank from the config seed),
  wrapped in DDP by ``ray.train.torch.prepare_model``; gradients are averaged over workers by DDP.
* Randomness of a step (t, noise, condition dropout): a per-rank generator seeded with seed + 1 + rank; or, with
  ``training.per_structure_noise``, per crystal from (seed, epoch, dataset index), which makes an N-worker run
  reproduce a single-process run with the same global batch (``tests/test_cluster_ray_train.py``).
* Checkpoints: every epoch, rank 0 writes the library's files (``last.pt``, ``best.pt`` on the training loss,
  ``train_state.pt`` with every rank's generator state, ``metrics.jsonl``) into ``out_dir`` and hands
  ``last.pt`` + ``train_state.pt`` to ``ray.train.report``, which persists them under ``storage_path`` (shared
  storage: ``$SCRATCH`` on Perlmutter). Every worker calls ``report`` once per epoch.
* Resume: after a lost worker Ray Train restarts the workers (up to ``max_failures`` times) and they continue from
  ``ray.train.get_checkpoint()``; a new run continues from ``resume_from`` (a folder holding ``train_state.pt``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "last.pt"


def store_datasets(store: str, train_split: str = "train", val_split: str | None = None,
                   repeat: dict[str, int] | None = None):
    """Default dataset loader: (train, val or None) ``CrystalDOSDataset`` of a dataset store (``repeat``: id ->
    times in the training set, see ``CrystalDOSDataset``)."""
    from dosmatgen.data.torch_dataset import CrystalDOSDataset

    train = CrystalDOSDataset(store, train_split, repeat=repeat)
    val = CrystalDOSDataset(store, val_split) if val_split else None
    return train, val


def param_digest(model: torch.nn.Module) -> float:
    """A float fingerprint of the parameters (equal on every rank iff DDP kept the replicas in sync)."""
    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


class RayTrainHooks:
    """:class:`~dosmatgen.training.distributed.DistributedHooks` of a Ray Train worker.

    Collectives run on the device of the process group's backend: Ray Train opens an NCCL-only group on GPUs,
    which cannot reduce CPU tensors, so under NCCL a tensor is reduced on the worker's GPU (and returned there);
    under gloo on CPU.
    """

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank, self.world_size, self.device = int(rank), int(world_size), torch.device(device)

    @classmethod
    def from_context(cls) -> "RayTrainHooks":
        ctx = ray.train.get_context()
        device = ray.train.torch.get_device()
        if device.type == "cuda":  # all_gather_object under NCCL uses the current CUDA device
            torch.cuda.set_device(device)
        return cls(ctx.get_world_rank(), ctx.get_world_size(), device)

    def collective_device(self) -> torch.device:
        """Where the process group's backend takes tensors: the worker's device under NCCL, else CPU."""
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "gloo"
        return self.device if str(backend).lower() == "nccl" else torch.device("cpu")

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return tensor
        on_group = tensor.to(self.collective_device())
        torch.distributed.all_reduce(on_group)
        return on_group

    def all_gather_object(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model)


def _report_epoch(record, hooks: RayTrainHooks, metrics_dir: str | None) -> None:
    """Per-rank metrics line, then ``ray.train.report`` (rank 0 with a checkpoint of the state it just wrote)."""
    import shutil

    from dosmatgen.training.denoiser_task import LAST_CHECKPOINT
    from dosmatgen.training.train_state import TRAIN_STATE

    metrics = {"epoch": record.epoch, "step": record.global_step, "lr": record.metrics["lr"],
               "train_loss": record.metrics["train_loss"], "structures": record.structures, "param_digest": param_digest(record.model),
               "rank": hooks.rank, "local_structures": record.local_structures}
    if metrics_dir:  # per-rank metrics log (Ray keeps only rank 0's metrics)
        path = Path(metrics_dir) / f"rank{hooks.rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if record.state_path is not None:
            for name in (LAST_CHECKPOINT, TRAIN_STATE):
                shutil.copyfile(record.state_path.parent / name, Path(tmp) / name)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs (see the module docstring)."""
    from dataclasses import asdict

    from dosmatgen.screen.stages import resolve_callable
    from dosmatgen.training.checkpoint import scalers_to_tensors
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.denoiser_task import DenoiserTask
    from dosmatgen.training.engine import EngineSettings, run_training
    from dosmatgen.training.train_state import read_train_state
    from dosmatgen.training.trainer import build_model

    torch.set_num_threads(int(loop_config.get("threads_per_worker", 1)))
    cfg = RunConfig.from_dict(loop_config["run_config"])
    tc = cfg.training
    hooks = RayTrainHooks.from_context()
    loader_fn = resolve_callable(loop_config.get("dataset_loader", "dosmatgen_cluster.ray_train:store_datasets"))
    train_ds, _val = loader_fn(**loop_config.get("dataset_options", {}))
    init_from = loop_config.get("init_from")
    record = {"data": {**asdict(cfg.data), "val_split": None}, **({"init_from": init_from} if init_from else {})}
    task = DenoiserTask(
        cfg, train_ds, None, hooks=hooks, model_factory=lambda: build_model(cfg, init_from=init_from),
        scalers=scalers_to_tensors(getattr(getattr(train_ds, "store", None), "scalers", None)),
        num_atoms_counts=None, training_record=record,
    )
    settings = EngineSettings.from_train_config(
        tc, int(loop_config.get("epochs", tc.epochs)),
        max_batches_per_epoch=int(loop_config.get("max_batches_per_epoch", tc.max_batches_per_epoch) or 0),
    )
    with tempfile.TemporaryDirectory() as private:
        # a restarted run (lost worker, or the same run name in the same storage) resumes from Ray's latest
        # checkpoint; a new run may continue from a previous run's folder (``resume_from``)
        ckpt = ray.train.get_checkpoint()
        resume_dir = None if ckpt is None else Path(ckpt.to_directory(str(Path(private) / "resume")))
        if resume_dir is None and loop_config.get("resume_from"):
            resume_dir = Path(loop_config["resume_from"])
        state = read_train_state(resume_dir, "denoiser") if resume_dir is not None else None
        out = Path(loop_config["out_dir"]) if loop_config.get("out_dir") else Path(private) / "out"
        run_training(task, settings, out, hooks=hooks, state=state,
                     state_path=None if resume_dir is None else resume_dir / "train_state.pt",
                     on_epoch_end=lambda rec: _report_epoch(rec, hooks, loop_config.get("metrics_dir")))


def run_distributed_training(
    run_config: dict[str, Any],
    *,
    num_workers: int,
    use_gpu: bool,
    storage_path: str,
    name: str = "dosmatgen-train",
    epochs: int | None = None,
    dataset_loader: str = "dosmatgen_cluster.ray_train:store_datasets",
    dataset_options: dict[str, Any] | None = None,
    resume_from: str | None = None,
    init_from: str | None = None,
    max_failures: int = 2,
    threads_per_worker: int = 1,
    max_batches_per_epoch: int | None = None,
    metrics_dir: str | None = None,
    out_dir: str | None = None,
):
    """Run a ``TorchTrainer``; returns Ray's ``Result`` (metrics, checkpoint, path).

    ``training.batch_size`` is the GLOBAL batch: it must be a multiple of ``num_workers`` (each worker takes
    batch_size / num_workers). Ray Train resumes a run found under ``storage_path/name`` by itself, so give every
    run its own name (``train_to_folder`` derives it from the output folder). ``out_dir``: rank 0 also writes
    ``last.pt``, ``best.pt``, ``train_state.pt`` and ``metrics.jsonl`` there after every epoch. ``max_failures``:
    how often Ray Train restarts the workers after a lost one (each restart continues from the last checkpoint).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from dosmatgen.errors import InvalidRecordError

    batch_size = int((run_config.get("training") or {}).get("batch_size", 256))
    if num_workers < 1 or batch_size % num_workers:
        raise InvalidRecordError(f"training.batch_size {batch_size} (the global batch) must be a multiple of the "
                                 f"{num_workers} workers")
    loop_config = {"run_config": run_config, "dataset_loader": dataset_loader,
                   "dataset_options": dict(dataset_options or {}), "threads_per_worker": threads_per_worker}
    if epochs is not None:
        loop_config["epochs"] = epochs
    if max_batches_per_epoch is not None:
        loop_config["max_batches_per_epoch"] = max_batches_per_epoch
    if metrics_dir is not None:
        loop_config["metrics_dir"] = metrics_dir
    if resume_from is not None:
        loop_config["resume_from"] = str(resume_from)
    if init_from is not None:
        loop_config["init_from"] = str(init_from)
    if out_dir is not None:
        loop_config["out_dir"] = str(out_dir)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": threads_per_worker, **({"GPU": 1} if use_gpu else {})}),
        run_config=RunConfig(name=name, storage_path=storage_path,
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=max_failures)),
    )
    return trainer.fit()


def run_name_for(out: Path) -> str:
    """The Ray Train run name of an output folder: unique per folder, stable across resubmissions."""
    import hashlib

    return f"dosmatgen-train-{out.name}-{hashlib.sha256(str(out).encode()).hexdigest()[:10]}"


def train_to_folder(
    run_config: dict[str, Any],
    store: str,
    out: str | Path,
    *,
    num_workers: int,
    use_gpu: bool = False,
    storage_path: str | None = None,
    address: str | None = None,
    epochs: int | None = None,
    resume: bool = False,
    resume_from: str | None = None,
    threads_per_worker: int = 1,
    init_from: str | None = None,
    max_failures: int = 2,
    repeat: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Distributed training of the denoiser on the train split of ``store``; the result lands in ``out`` like a
    single-process ``dosmatgen train``: ``last.pt`` (library format, written after every epoch), ``best.pt`` (lowest
    all-reduced training loss; this mode computes no validation loss), ``train_state.pt`` (the one training state,
    with every rank's generator state, for resume), ``config.yaml`` and ``metrics.jsonl`` (one line per epoch).

    ``storage_path`` (default ``out/ray``) receives Ray Train's own results and checkpoints under a run name derived
    from ``out``; on a cluster it must be shared storage. ``resume`` continues from ``out/last.pt``; ``resume_from``
    from another checkpoint folder. A fresh run refuses an ``out`` that already holds a checkpoint or a Ray run.
    ``init_from`` starts a fresh run from a checkpoint's weights (fine-tuning, see
    :mod:`dosmatgen.training.warm_start`); it is checked against the config before Ray starts. ``max_failures``:
    restarts after a lost worker, each from the last checkpoint. ``repeat`` (id -> times) weights structures of the
    training set (the discovery loop's new DFT records).
    """
    import yaml

    from dosmatgen.errors import CheckpointError, InvalidRecordError
    from dosmatgen.training.train_state import TRAIN_STATE, read_train_state

    out = Path(out).absolute()
    batch_size = int((run_config.get("training") or {}).get("batch_size", 256))
    if num_workers < 1 or batch_size % num_workers:
        raise InvalidRecordError(f"training.batch_size {batch_size} (the global batch) must be a multiple of the "
                                 f"{num_workers} workers")
    storage = Path(storage_path).absolute() if storage_path else out / "ray"
    name = run_name_for(out)
    target_epochs = int(epochs if epochs is not None else (run_config.get("training") or {}).get("epochs", 1000))
    if resume and resume_from is None:
        if not (out / TRAIN_STATE).is_file():
            raise CheckpointError(f"{out / TRAIN_STATE} not found: nothing to resume in {out}")
        resume_from = str(out)
    elif not resume and resume_from is None and ((out / CHECKPOINT_FILE).exists() or (storage / name).exists()):
        raise CheckpointError(f"{out} already holds a checkpoint or a Ray Train run ({storage / name}); resume it "
                              "(--resume) or choose another output folder")
    if init_from is not None:
        if resume or resume_from is not None:
            raise InvalidRecordError("--init-from starts a new run; use it without --resume")
        from dosmatgen.checkpoint_paths import resolve_checkpoint
        from dosmatgen.training.config import RunConfig
        from dosmatgen.training.warm_start import warm_start_weights

        init_from = str(resolve_checkpoint(init_from).absolute())
        warm_start_weights(init_from, RunConfig.from_dict(run_config))  # a bad checkpoint fails here, not on a worker
    if resume_from is not None:
        done = read_train_state(Path(resume_from), "denoiser").epoch
        if done >= target_epochs:
            raise InvalidRecordError(f"{Path(resume_from) / TRAIN_STATE} is already at epoch {done}; ask for more epochs "
                                     f"than that (--epochs), not {target_epochs}")
    saved = dict(run_config)
    saved["data"] = {**dict(run_config.get("data") or {}), "store": str(store)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    from dosmatgen_cluster.ray_sampling import connect

    connect(address)
    result = run_distributed_training(
        saved, num_workers=num_workers, use_gpu=use_gpu, storage_path=str(storage), name=name, epochs=epochs,
        dataset_options={"store": str(store), "train_split": (saved["data"].get("train_split") or "train"),
                         **({"repeat": dict(repeat)} if repeat else {})},
        resume_from=resume_from, init_from=init_from, threads_per_worker=threads_per_worker, metrics_dir=str(out / "ranks"),
        out_dir=str(out), max_failures=max_failures,
    )
    if result.error is not None:
        raise RuntimeError(f"distributed training failed: {result.error}")
    return {"metrics": dict(result.metrics or {}), "checkpoint": str(out / CHECKPOINT_FILE), "ray_result": str(result.path)}


def main(argv: list[str] | None = None) -> int:
    """``python -m dosmatgen_cluster.ray_train CONFIG.yaml --out DIR --workers N [--gpu] [--epochs E] [--resume]``
    (the same as ``dosmatgen train --distributed``)."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(prog="python -m dosmatgen_cluster.ray_train")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="output folder: last.pt, config.yaml, metrics.jsonl")
    p.add_argument("--data", default=None, help="dataset store; overrides data.store of the config")
    p.add_argument("--storage", default=None, help="shared folder for Ray Train results (default OUT/ray)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--resume-from", default=None, help="continue from another checkpoint folder")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--max-failures", type=int, default=2,
                   help="restarts after a lost worker, each from the last checkpoint (default 2)")
    args = p.parse_args(argv)
    raw = yaml.safe_load(Path(args.config).read_text())
    store = args.data or (raw.get("data") or {}).get("store")
    if not store:
        raise SystemExit(f"{args.config}: data.store (or --data) is required for distributed training")
    info = train_to_folder(raw, store, args.out, num_workers=args.workers, use_gpu=args.gpu, storage_path=args.storage,
                           address=args.address, epochs=args.epochs, resume=args.resume, resume_from=args.resume_from,
                           max_failures=args.max_failures)
    print(json.dumps(info, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
