"""``dosmatgen train-regressor``: train the time-dependent DOS regressor used by ``sample --guidance classifier``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-regressor",
        help="train the noisy-structure DOS regressor for classifier guidance",
        description="YAML sections: regressor (hidden_dim, num_layers, num_freqs, time_dim, loss), diffusion (must "
        "equal the denoiser's), training (lr, batch_size, epochs, seed, ...), data (store, train_split, val_split).",
    )
    p.add_argument("--config", required=True, help="YAML config (e.g. configs/model/regressor_small.yaml)")
    p.add_argument("--data", default=None, help="dataset store (default: data.store of the config, else the bundled store)")
    p.add_argument("--out", required=True, help="output folder (best.pt, last.pt, metrics.jsonl)")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from this regressor's weights, e.g. bundled:regressor-small (fine-tuning; same config)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in OUT from OUT/train_state.pt (same config and data; --epochs may change)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from dosmatgen.data.bundled import bundled_dataset_path
    from dosmatgen.data.torch_dataset import CrystalDOSDataset
    from dosmatgen.regressor.train import load_regressor_run_config, train_regressor

    config = load_regressor_run_config(args.config)
    store = args.data or config.data.store or bundled_dataset_path()
    train_set = CrystalDOSDataset(store, config.data.train_split)
    val_set = CrystalDOSDataset(store, config.data.val_split) if config.data.val_split else None
    result = train_regressor(
        config, train_set, val_set, args.out, scalers={"site": train_set.site_scaler}, device=args.device, epochs=args.epochs,
        init_from=args.init_from, resume=args.resume,
        data={"store": store},
    )
    print(f"trained {result.epochs} epochs; best loss {result.best_val:.4f}; checkpoint {result.best_checkpoint}")
    return 0
