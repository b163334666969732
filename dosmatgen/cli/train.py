"""``dosmatgen train``: train the DOSMatGen denoiser.

``dosmatgen train --config configs/model/small.yaml [--data STORE.zarr] [--out DIR] [--resume] [--device cpu|cuda]``
``dosmatgen train --config ... --distributed --workers N [--gpu] [--storage DIR] [--address HOST:PORT]``

The config (YAML) has sections ``model``, ``diffusion``, ``conditioning``, ``training`` and ``data`` (see
docs/model.md). ``--data`` overrides ``data.store``. The output folder receives ``last.pt`` (every epoch),
``best.pt`` (lowest validation loss), ``metrics.jsonl`` and a copy of the config (``config.yaml``).

``--distributed`` trains with Ray Train DDP instead (NCCL on GPUs, gloo on CPU; one worker per GPU with
``--gpu``), on the Ray cluster at ``--address`` / ``RAY_ADDRESS`` or a local one. The orchestration lives in the
``dosmatgen_cluster`` package, found by name through :mod:`dosmatgen.plugins` (the library never imports it).
OUT receives ``last.pt`` (the same format, so ``dosmatgen sample`` takes it), ``config.yaml`` and ``metrics.jsonl``; no validation loss or
``best.pt`` is computed in this mode. ``--storage`` (default OUT/ray) must be shared storage on a cluster.
"""

from __future__ import annotations

import argparse
from dataclasses import replace


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the DOSMatGen diffusion model", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="run config YAML (e.g. configs/model/small.yaml)")
    p.add_argument("--data", default=None, help="dataset store (.zarr); overrides data.store of the config")
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start a new run from this checkpoint's (EMA) weights, e.g. bundled:dosmatgen-small with "
                        "configs/model/small.yaml, to fine-tune it on --data; optimizer and epochs start afresh")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    d = p.add_argument_group("distributed (Ray Train DDP; needs the cluster extra)")
    d.add_argument("--distributed", action="store_true", help="train with Ray Train DDP")
    d.add_argument("--workers", type=int, default=2, help="DDP workers (default 2; with --gpu one per GPU)")
    d.add_argument("--gpu", action="store_true", help="one GPU per worker (NCCL)")
    d.add_argument("--storage", default=None, help="shared folder for Ray Train results (default OUT/ray)")
    d.add_argument("--address", default=None, help="Ray cluster address (default RAY_ADDRESS, else a local cluster)")
    d.add_argument("--max-failures", type=int, default=2,
                   help="restarts after a lost worker, each from the last checkpoint (default 2)")
    p.set_defaults(func=cmd_train)


def _train_distributed(args: argparse.Namespace, config, store: str) -> int:
    from dosmatgen.errors import InvalidRecordError

    if args.workers < 1:
        raise InvalidRecordError(f"--workers must be >= 1, got {args.workers}")
    from dosmatgen import plugins

    train_to_folder = plugins.lookup(plugins.DISTRIBUTED_TRAINING, "ray")  # PluginUnavailable without the cluster extra
    print(f"distributed training on {args.workers} {'GPU' if args.gpu else 'CPU'} worker(s)")
    info = train_to_folder(config.to_dict(), store, args.out, num_workers=args.workers, use_gpu=args.gpu,
                           storage_path=args.storage, address=args.address, resume=args.resume,
                           init_from=args.init_from, max_failures=args.max_failures)
    m = info["metrics"]
    print(f"done: epoch {m.get('epoch')}, step {m.get('step')}, train loss {m.get('train_loss', float('nan')):.4f}")
    print(f"checkpoint: {info['checkpoint']}; log: {args.out}/metrics.jsonl")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    import yaml

    from dosmatgen.data.torch_dataset import CrystalDOSDataset
    from dosmatgen.errors import InvalidRecordError, StoreError
    from dosmatgen.training.config import load_run_config
    from dosmatgen.training.trainer import train

    config = load_run_config(args.config)
    store = args.data or config.data.store
    if not store:
        raise InvalidRecordError("no dataset: pass --data STORE.zarr or set data.store", file=args.config)
    config = replace(config, data=replace(config.data, store=str(store)))  # recorded in the checkpoint
    if args.epochs is not None:
        config = replace(config, training=replace(config.training, epochs=args.epochs))
    if args.init_from is not None and args.resume:
        raise InvalidRecordError("--init-from starts a new run; use it without --resume")
    if args.distributed:
        return _train_distributed(args, config, store)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidRecordError(f"--device {device} asked for, but no CUDA device is available")

    train_ds = CrystalDOSDataset(store, config.data.train_split, scaled=True)
    if config.model.cond_mode != "none" and not train_ds.has_dos:
        raise StoreError(f"{store} has no DOS features, but the model is conditioned (cond_mode={config.model.cond_mode!r})")
    val_ds = CrystalDOSDataset(train_ds.store, config.data.val_split, scaled=True) if config.data.val_split else None
    if val_ds is not None and len(val_ds) == 0:
        val_ds = None
    scalers = train_ds.store.scalers if train_ds.has_dos else None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = config.to_dict()
    saved["data"]["store"] = str(store)
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    print(f"training on {len(train_ds)} structures ({len(val_ds) if val_ds is not None else 0} validation) on {device}")
    result = train(config, train_ds, val_ds, out, device=device, resume=args.resume, scalers=scalers,
                   progress=not args.no_progress, init_from=args.init_from)
    best = "n/a" if result.best_val is None else f"{result.best_val:.4f}"
    print(f"done: {result.epochs_completed} epochs, {result.global_step} steps, best loss {best}")
    print(f"checkpoints: {result.last_checkpoint} (last), {result.best_checkpoint} (best); log: {out / 'metrics.jsonl'}")
    return 0
