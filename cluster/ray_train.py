"""Distributed training on Ray Train: ``TorchTrainer`` DDP around :func:`dosmatgen.training.step.train_step`.

* Backend: NCCL on GPUs, gloo on CPU (``ScalingConfig(num_workers, use_gpu)``; Ray Train picks the backend).
* Data: each worker builds the dataset (``dataset_loader``, default: the store's train split) and reads its
  own shard through a ``DistributedSampler`` (drop_last, reshuffled per epoch with (seed, epoch)).
* Model: :func:`dosmatgen.training.trainer.build_model` (same init on every rank from the config seed),
  wrapped in DDP by ``ray.train.torch.prepare_model``; gradients are averaged over workers by DDP.
* Randomness of a step (t, noise, condition dropout): a per-rank generator seeded with (seed, rank); or, with
  ``training.per_structure_noise``, per crystal from (seed, epoch, dataset index), which makes an N-worker run
  reproduce a single-process run with the same global batch (``tests/test_cluster_ray_train.py``).
* Checkpoints: every epoch, rank 0 writes the library's checkpoint format (``last.pt``, loadable by
  :func:`dosmatgen.training.checkpoint.load_checkpoint`, so ``dosmatgen sample`` can use it) into a directory that
  ``ray.train.report`` persists under ``storage_path`` (shared storage: ``$SCRATCH`` on Perlmutter). Every worker
  calls ``report`` once per epoch. Resume: ``ray.train.get_checkpoint()`` after a worker failure, or
  ``resume_from`` (a previous run's checkpoint directory, handed to the loop; Ray 2.60 deprecates
  ``TorchTrainer(resume_from_checkpoint=...)``). The optimizer state and each rank's generator state are restored.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "last.pt"


def store_datasets(store: str, train_split: str = "train", val_split: str | None = None):
    """Default dataset loader: (train, val or None) ``CrystalDOSDataset`` of a dataset store."""
    from dosmatgen.data.torch_dataset import CrystalDOSDataset

    train = CrystalDOSDataset(store, train_split)
    val = CrystalDOSDataset(store, val_split) if val_split else None
    return train, val


def param_digest(model: torch.nn.Module) -> float:
    """A float fingerprint of the parameters (equal on every rank iff DDP kept the replicas in sync)."""
    with torch.no_grad():
        return float(sum((p.double() * (i + 1)).sum() for i, p in enumerate(model.parameters())))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The function every Ray Train worker runs (see the module docstring)."""
    import shutil
    from dataclasses import asdict

    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    from torch.utils.data.distributed import DistributedSampler
    from torch_geometric.loader import DataLoader

    from dosmatgen.diffusion.process import JointDiffusion
    from dosmatgen.screen.stages import resolve_callable
    from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint, scalers_to_tensors
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.keyed_randomness import keyed_step_draws
    from dosmatgen.training.step import train_step, unwrap
    from dosmatgen.training.trainer import build_model, num_atoms_counts

    torch.set_num_threads(int(loop_config.get("threads_per_worker", 1)))
    cfg = RunConfig.from_dict(loop_config["run_config"])
    tc = cfg.training
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    loader_fn = resolve_callable(loop_config.get("dataset_loader", "dosmatgen_cluster.ray_train:store_datasets"))
    train_ds, _val = loader_fn(**loop_config.get("dataset_options", {}))
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=tc.seed, drop_last=True)
    per_worker_batch = tc.batch_size // world  # run_distributed_training checks that world divides batch_size
    counts = num_atoms_counts(train_ds)
    scalers = scalers_to_tensors(getattr(getattr(train_ds, "store", None), "scalers", None))
    loader = DataLoader(train_ds, batch_size=per_worker_batch, sampler=sampler)

    model = build_model(cfg, init_from=loop_config.get("init_from"))  # every rank: the same start
    diffusion = JointDiffusion(cfg.diffusion, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    # plateau schedule on the all-reduced training loss (identical on every rank; this mode has no validation)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=tc.lr_factor,
                                                           patience=tc.lr_patience, min_lr=tc.min_lr)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(tc.ema_decay), use_buffers=True)
           if tc.ema_decay > 0 else None)
    generator = torch.Generator(device=device).manual_seed(tc.seed * 1000 + rank + 1)
    start_epoch, global_step = 1, 0
    init_record = loop_config.get("init_from")  # recorded in every checkpoint of a warm-started run

    # a restarted run (worker failure, or the same run name in the same storage) resumes from Ray's latest
    # checkpoint; a new run may start from a previous run's checkpoint folder (``resume_from``)
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and loop_config.get("resume_from"):
        ckpt = ray.train.Checkpoint.from_directory(loop_config["resume_from"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            stored = load_checkpoint(Path(d) / CHECKPOINT_FILE, cfg.model, cfg.diffusion, map_location="cpu")
            model.load_state_dict(stored.model_state)
            if stored.optimizer_state is not None:
                optimizer.load_state_dict(stored.optimizer_state)
            if stored.scheduler_state is not None:
                scheduler.load_state_dict(stored.scheduler_state)
            if ema is not None and stored.ema_state is not None:
                ema.load_state_dict(stored.ema_state)
            start_epoch, global_step = stored.epoch + 1, stored.global_step
            init_record = stored.training.get("init_from", init_record)
            extra = json.loads((Path(d) / "ranks.json").read_text()) if (Path(d) / "ranks.json").is_file() else {}
            if str(rank) in extra.get("generators", {}):
                generator.set_state(torch.tensor(extra["generators"][str(rank)], dtype=torch.uint8))
    model = ray.train.torch.prepare_model(model)

    epochs = int(loop_config.get("epochs", tc.epochs))
    max_batches = int(loop_config.get("max_batches_per_epoch", tc.max_batches_per_epoch) or 0)
    out_dir = Path(loop_config["out_dir"]) if loop_config.get("out_dir") else None
    for epoch in range(start_epoch, epochs + 1):
        sampler.set_epoch(epoch)
        total, seen = 0.0, 0
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            batch = batch.to(device)
            atom_scale = 1.0
            if world > 1:  # per-atom loss terms: the mean over the GLOBAL batch's atoms, as one process computes it
                atoms = torch.tensor([float(batch.num_nodes)], dtype=torch.float64)
                torch.distributed.all_reduce(atoms)
                atom_scale = world * batch.num_nodes / float(atoms[0])
            draws = keyed_step_draws(diffusion, batch, tc.seed, epoch) if tc.per_structure_noise else None
            terms = train_step(model, diffusion, batch, optimizer, dropout=cfg.conditioning, grad_clip=tc.grad_clip,
                               grad_clip_mode=tc.grad_clip_mode, ema=ema, generator=generator, draws=draws,
                               atom_scale=atom_scale)
            b = int(batch.num_atoms.numel())
            total += terms["loss"] * b
            seen += b
            global_step += 1
        stats = torch.tensor([total, float(seen)], dtype=torch.float64)
        if world > 1:
            torch.distributed.all_reduce(stats)
        train_loss = float(stats[0] / max(stats[1], 1.0))
        scheduler.step(train_loss)
        gen_states = [torch.zeros_like(generator.get_state()) for _ in range(world)]
        if world > 1:
            torch.distributed.all_gather_object(gen_states, generator.get_state())
        else:
            gen_states = [generator.get_state()]
        metrics = {"epoch": epoch, "step": global_step, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                   "structures": int(stats[1]), "param_digest": param_digest(unwrap(model)), "rank": rank,
                   "local_structures": seen}
        if loop_config.get("metrics_dir"):  # per-rank metrics log (Ray keeps only rank 0's metrics)
            path = Path(loop_config["metrics_dir"]) / f"rank{rank}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(json.dumps(metrics) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                save_checkpoint(Path(tmp) / CHECKPOINT_FILE, DenoiserCheckpoint(
                    model_config=cfg.model, diffusion_config=cfg.diffusion, model_state=unwrap(model).state_dict(),
                    conditioning=cfg.conditioning.to_dict(),
                    training={**tc.to_dict(), "data": {**asdict(cfg.data), "val_split": None},  # no validation here
                              **({"init_from": init_record} if init_record else {})},
                    ema_state=ema.state_dict() if ema is not None else None,
                    optimizer_state=optimizer.state_dict(), scheduler_state=scheduler.state_dict(),
                    rng_state={"generator": generator.get_state()}, epoch=epoch, global_step=global_step,
                    best_val=None, scalers=scalers, num_atoms_counts=counts,
                ))
                (Path(tmp) / "ranks.json").write_text(json.dumps({"generators": {str(r): s.tolist() for r, s in enumerate(gen_states)}}))
                if out_dir is not None:  # the user's folder gets every epoch too (a killed job can --resume from it)
                    for name in ("ranks.json", CHECKPOINT_FILE):  # ranks.json first: last.pt marks a complete pair
                        part = out_dir / f".{name}.part"
                        shutil.copyfile(Path(tmp) / name, part)
                        os.replace(part, out_dir / name)
                    with open(out_dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(metrics) + "\n")
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)


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
    max_failures: int = 0,
    threads_per_worker: int = 1,
    max_batches_per_epoch: int | None = None,
    metrics_dir: str | None = None,
    out_dir: str | None = None,
):
    """Run a ``TorchTrainer``; returns Ray's ``Result`` (metrics, checkpoint, path).

    ``training.batch_size`` is the GLOBAL batch: it must be a multiple of ``num_workers`` (each worker takes
    batch_size / num_workers). Ray Train resumes a run found under ``storage_path/name`` by itself, so give every
    run its own name (``train_to_folder`` derives it from the output folder). ``out_dir``: rank 0 also writes
    ``last.pt``, ``ranks.json`` and ``metrics.jsonl`` there after every epoch.
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
) -> dict[str, Any]:
    """Distributed training of the denoiser on the train split of ``store``; the result lands in ``out`` like a
    single-process ``dosmatgen train``: ``last.pt`` (library format, written after every epoch), ``ranks.json``
    (per-rank generator states, for resume), ``config.yaml`` and ``metrics.jsonl`` (one line per epoch: the
    all-reduced training loss; this mode computes no validation loss and no ``best.pt``).

    ``storage_path`` (default ``out/ray``) receives Ray Train's own results and checkpoints under a run name derived
    from ``out``; on a cluster it must be shared storage. ``resume`` continues from ``out/last.pt``; ``resume_from``
    from another checkpoint folder. A fresh run refuses an ``out`` that already holds a checkpoint or a Ray run.
    ``init_from`` starts a fresh run from a checkpoint's weights (fine-tuning, see
    :mod:`dosmatgen.training.warm_start`); it is checked against the config before Ray starts.
    """
    import yaml

    from dosmatgen.errors import CheckpointError, InvalidRecordError
    from dosmatgen.training.checkpoint import load_checkpoint

    out = Path(out).absolute()
    batch_size = int((run_config.get("training") or {}).get("batch_size", 256))
    if num_workers < 1 or batch_size % num_workers:
        raise InvalidRecordError(f"training.batch_size {batch_size} (the global batch) must be a multiple of the "
                                 f"{num_workers} workers")
    storage = Path(storage_path).absolute() if storage_path else out / "ray"
    name = run_name_for(out)
    target_epochs = int(epochs if epochs is not None else (run_config.get("training") or {}).get("epochs", 1000))
    if resume and resume_from is None:
        if not (out / CHECKPOINT_FILE).is_file():
            raise CheckpointError(f"{out}: nothing to resume (no {CHECKPOINT_FILE})")
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
        done = load_checkpoint(Path(resume_from) / CHECKPOINT_FILE).epoch
        if done >= target_epochs:
            raise InvalidRecordError(f"{resume_from}/{CHECKPOINT_FILE} is already at epoch {done}; ask for more epochs "
                                     f"than that (--epochs), not {target_epochs}")
    saved = dict(run_config)
    saved["data"] = {**dict(run_config.get("data") or {}), "store": str(store)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    from dosmatgen_cluster.ray_sampling import connect

    connect(address)
    result = run_distributed_training(
        saved, num_workers=num_workers, use_gpu=use_gpu, storage_path=str(storage), name=name, epochs=epochs,
        dataset_options={"store": str(store), "train_split": (saved["data"].get("train_split") or "train")},
        resume_from=resume_from, init_from=init_from, threads_per_worker=threads_per_worker, metrics_dir=str(out / "ranks"),
        out_dir=str(out),
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
    args = p.parse_args(argv)
    raw = yaml.safe_load(Path(args.config).read_text())
    store = args.data or (raw.get("data") or {}).get("store")
    if not store:
        raise SystemExit(f"{args.config}: data.store (or --data) is required for distributed training")
    info = train_to_folder(raw, store, args.out, num_workers=args.workers, use_gpu=args.gpu, storage_path=args.storage,
                           address=args.address, epochs=args.epochs, resume=args.resume, resume_from=args.resume_from)
    print(json.dumps(info, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
