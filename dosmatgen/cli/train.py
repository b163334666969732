"""``dosmatgen train``: train the DOSMatGen denoiser.

``dosmatgen train --config configs/model/small.yaml [--data STORE.zarr] [--out DIR] [--resume] [--device cpu|cuda]``

The config (YAML) has sections ``model``, ``diffusion``, ``conditioning``, ``training`` and ``data`` (see
docs/model.md). ``--data`` overrides ``data.store``. The output folder receives ``last.pt`` (every epoch),
``best.pt`` (lowest validation loss), ``metrics.jsonl`` and a copy of the config (``config.yaml``).
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
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


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
    if args.epochs is not None:
        config = replace(config, training=replace(config.training, epochs=args.epochs))
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
                   progress=not args.no_progress)
    best = "n/a" if result.best_val is None else f"{result.best_val:.4f}"
    print(f"done: {result.epochs_completed} epochs, {result.global_step} steps, best loss {best}")
    print(f"checkpoints: {result.last_checkpoint} (last), {result.best_checkpoint} (best); log: {out / 'metrics.jsonl'}")
    return 0
