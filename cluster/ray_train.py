"""Distributed training on Ray Train: ``TorchTrainer`` DDP around :func:`dosmatgen.training.step.train_step`.

* Backend: NCCL on GPUs, gloo on CPU (``ScalingConfig(num_workers, use_gpu)``; Ray Train picks the backend).
* Data: each worker builds the dataset (``dataset_loader``, default: the store's train split) and reads its
  own shard through a ``DistributedSampler`` (drop_last, reshuffled per epoch with (seed, epoch)).
* Model: :func:`dosmatgen.training.trainer.build_model` (same init on every rank from the config seed),
  wrapped in DDP by ``ray.train.torch.prepare_model``; gradients are averaged over workers by DDP.
* Randomness of a step (t, noise, condition dropout): a per-rank generator seeded with (seed, rank).
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
    from torch.utils.data.distributed import DistributedSampler
    from torch_geometric.loader import DataLoader

    from dosmatgen.diffusion.process import JointDiffusion
    from dosmatgen.screen.stages import resolve_callable
    from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint, scalers_to_tensors
    from dosmatgen.training.config import RunConfig
    from dosmatgen.training.step import train_step, unwrap
    from dosmatgen.training.trainer import build_model, num_atoms_counts

    torch.set_num_threads(int(loop_config.get("threads_per_worker", 1)))
    cfg = RunConfig.from_dict(loop_config["run_config"])
    tc = cfg.training
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    loader_fn = resolve_callable(loop_config.get("dataset_loader", "cluster.ray_train:store_datasets"))
    train_ds, _val = loader_fn(**loop_config.get("dataset_options", {}))
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=tc.seed, drop_last=True)
    per_worker_batch = max(1, tc.batch_size // world)
    counts = num_atoms_counts(train_ds)
    scalers = scalers_to_tensors(getattr(getattr(train_ds, "store", None), "scalers", None))
    loader = DataLoader(train_ds, batch_size=per_worker_batch, sampler=sampler)

    model = build_model(cfg)
    diffusion = JointDiffusion(cfg.diffusion, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr)
    generator = torch.Generator(device=device).manual_seed(tc.seed * 1000 + rank + 1)
    start_epoch, global_step = 1, 0

    # a restarted run (worker failure) resumes from Ray's latest checkpoint; a new run may start from a
    # previous run's checkpoint directory (Ray 2.60 deprecates TorchTrainer(resume_from_checkpoint=...))
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and loop_config.get("resume_from"):
        ckpt = ray.train.Checkpoint.from_directory(loop_config["resume_from"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            stored = load_checkpoint(Path(d) / CHECKPOINT_FILE, cfg.model, cfg.diffusion, map_location="cpu")
            model.load_state_dict(stored.model_state)
            if stored.optimizer_state is not None:
                optimizer.load_state_dict(stored.optimizer_state)
            start_epoch, global_step = stored.epoch + 1, stored.global_step
            extra = json.loads((Path(d) / "ranks.json").read_text()) if (Path(d) / "ranks.json").is_file() else {}
            if str(rank) in extra.get("generators", {}):
                generator.set_state(torch.tensor(extra["generators"][str(rank)], dtype=torch.uint8))
    model = ray.train.torch.prepare_model(model)

    epochs = int(loop_config.get("epochs", tc.epochs))
    max_batches = int(loop_config.get("max_batches_per_epoch", tc.max_batches_per_epoch) or 0)
    for epoch in range(start_epoch, epochs + 1):
        sampler.set_epoch(epoch)
        total, seen = 0.0, 0
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            batch = batch.to(device)
            terms = train_step(model, diffusion, batch, optimizer, dropout=cfg.conditioning,
                               grad_clip=tc.grad_clip, grad_clip_mode=tc.grad_clip_mode, generator=generator)
            b = int(batch.num_atoms.numel())
            total += terms["loss"] * b
            seen += b
            global_step += 1
        stats = torch.tensor([total, float(seen)], dtype=torch.float64)
        if world > 1:
            torch.distributed.all_reduce(stats)
        gen_states = [torch.zeros_like(generator.get_state()) for _ in range(world)]
        if world > 1:
            torch.distributed.all_gather_object(gen_states, generator.get_state())
        else:
            gen_states = [generator.get_state()]
        metrics = {"epoch": epoch, "step": global_step, "train_loss": float(stats[0] / max(stats[1], 1.0)),
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
                bare = unwrap(model)
                save_checkpoint(Path(tmp) / CHECKPOINT_FILE, DenoiserCheckpoint(
                    model_config=cfg.model, diffusion_config=cfg.diffusion, model_state=bare.state_dict(),
                    conditioning=cfg.conditioning.to_dict(), training=tc.to_dict(), ema_state=None,
                    optimizer_state=optimizer.state_dict(), scheduler_state=None,
                    rng_state={"generator": generator.get_state()}, epoch=epoch, global_step=global_step,
                    best_val=None, scalers=scalers, num_atoms_counts=counts,
                ))
                (Path(tmp) / "ranks.json").write_text(json.dumps({"generators": {str(r): s.tolist() for r, s in enumerate(gen_states)}}))
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
    dataset_loader: str = "cluster.ray_train:store_datasets",
    dataset_options: dict[str, Any] | None = None,
    resume_from: str | None = None,
    max_failures: int = 0,
    threads_per_worker: int = 1,
    max_batches_per_epoch: int | None = None,
    metrics_dir: str | None = None,
):
    """Run a ``TorchTrainer``; returns Ray's ``Result`` (metrics, checkpoint, path)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

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


def main(argv: list[str] | None = None) -> int:
    """``python -m cluster.ray_train CONFIG.yaml --storage DIR --workers N [--gpu] [--epochs E] [--resume-from CKPT_DIR]``."""
    import argparse

    import yaml

    p = argparse.ArgumentParser(prog="python -m cluster.ray_train")
    p.add_argument("config")
    p.add_argument("--storage", required=True, help="shared folder for Ray Train results and checkpoints")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--resume-from", default=None)
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    args = p.parse_args(argv)
    raw = yaml.safe_load(Path(args.config).read_text())
    store = (raw.get("data") or {}).get("store")
    if not store:
        raise SystemExit(f"{args.config}: data.store is required for distributed training")
    from cluster.ray_sampling import connect

    connect(args.address)
    result = run_distributed_training(raw, num_workers=args.workers, use_gpu=args.gpu, storage_path=str(Path(args.storage).absolute()),
                                      epochs=args.epochs, dataset_options={"store": store}, resume_from=args.resume_from)
    print(json.dumps({"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
