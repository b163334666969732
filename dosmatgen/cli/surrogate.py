"""``dosmatgen surrogate``: train, evaluate and apply the forward DOS surrogate.

* ``dosmatgen surrogate train [--data STORE] --out DIR [--config YAML] [--preset small] [--target site|total]
  [--epochs N] [--max-minutes M] [--seed S] [--init-from CKPT | --resume]`` trains on the store's train split (default: the bundled GPAW
  dataset), selects the checkpoint on the val split, writes ``DIR/surrogate.pt``, ``DIR/metrics.jsonl``,
  ``DIR/training_curves.{png,svg}`` and prints the validation MAE next to the baselines. The test split is
  not touched.
* ``dosmatgen surrogate evaluate --checkpoint CKPT [--data STORE] [--split test] [--out FILE.json]``: intrinsic
  MAE(ŷ, y) on scaled features against the per-bin-mean and per-element baselines.
* ``dosmatgen surrogate predict STRUCTURE... --checkpoint CKPT [--out DIR] [--max-plots 20]``: predicted DOS of
  every structure (CIF, folder or zip of CIFs, extxyz) as ``DIR/predicted_dos.csv`` (one column per site, or per
  crystal for a total-DOS surrogate; energies relative to E_F in eV) and one plot per structure
  ``DIR/<id>_dos.{png,svg}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("surrogate", help="forward DOS surrogate: train, evaluate, predict", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="surrogate_command", metavar="SUBCOMMAND")
    sub.required = True

    t = sub.add_parser("train", help="train a surrogate on a dataset store")
    t.add_argument("--data", default=None, help="dataset store (.zarr); default: the bundled GPAW dataset")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--config", default=None, help="YAML file with SurrogateTrainConfig keys (preset, model, epochs, lr, ...)")
    t.add_argument("--preset", choices=("tiny", "small", "paper"), default=None, help="model size preset")
    t.add_argument("--target", choices=("site", "total"), default=None, help="site DOS (400 bins) or per-atom total DOS (256)")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time (checked per epoch)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default=None, help="torch device (default cpu)")
    t.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start from this surrogate's weights, e.g. bundled:surrogate-small (fine-tuning; same model config)")
    t.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in OUT from OUT/train_state.pt (same data and config; "
                        "--epochs and --max-minutes may change, the time already spent counts)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="intrinsic MAE of a surrogate vs the baselines on a split")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default=None, help="dataset store (.zarr); default: the bundled GPAW dataset")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--out", default=None, help="write the result as JSON here")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict the DOS of structures (CIF, folder/zip of CIFs, extxyz)")
    r.add_argument("structures", nargs="+", metavar="STRUCTURE")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--out", default="surrogate_prediction", help="output folder (default ./surrogate_prediction)")
    r.add_argument("--max-plots", type=int, default=20, help="plot at most this many structures (default 20)")
    r.add_argument("--device", default="cpu")
    r.set_defaults(func=cmd_predict)


def _store_path(arg: str | None):
    if arg is not None:
        return arg
    from dosmatgen.data.bundled import bundled_dataset_path

    return bundled_dataset_path()


def _train_config(args):
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.surrogate.config import SurrogateTrainConfig

    d: dict = {}
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise InvalidRecordError("no such config file", file=str(path))
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise InvalidRecordError(f"not valid YAML ({err})", file=str(path)) from None
        if not isinstance(d, dict):
            raise InvalidRecordError("config must be a mapping of SurrogateTrainConfig keys", file=str(path))
    for key, value in (("preset", args.preset), ("epochs", args.epochs), ("max_minutes", args.max_minutes),
                       ("seed", args.seed), ("device", args.device)):
        if value is not None:
            d[key] = value
    if args.target is not None:
        d["model"] = {**dict(d.get("model") or {}), "target": args.target}
    try:
        return SurrogateTrainConfig.from_dict(d)
    except (TypeError, ValueError) as err:
        raise InvalidRecordError(f"bad surrogate training config: {err}", file=args.config) from None


def cmd_train(args) -> int:
    from dosmatgen.plots.training_curves import plot_training_curves
    from dosmatgen.surrogate.evaluate import evaluate_surrogate
    from dosmatgen.surrogate.train import METRICS_LOG, train_surrogate

    config = _train_config(args)
    config.model_config()  # fail fast on a bad preset or model key
    store = _store_path(args.data)
    result = train_surrogate(store, args.out, config, init_from=args.init_from, resume=args.resume)
    plot_training_curves(Path(args.out) / METRICS_LOG, Path(args.out) / "training_curves", title="surrogate (L1, scaled DOS)")
    ev = evaluate_surrogate(result.checkpoint, store, split="val")
    (Path(args.out) / "val_evaluation.json").write_text(json.dumps(ev.to_dict(), indent=2))
    print(f"checkpoint {result.checkpoint} (best epoch {result.best_epoch} of {result.epochs_run}, "
          f"{result.seconds / 60:.1f} min{', stopped at the time limit' if result.stopped_early else ''})")
    _print_evaluation(ev)
    return 0


def _print_evaluation(ev) -> None:
    print(f"{ev.split} split: {ev.n_structures} structures, {ev.n_rows} {ev.target} DOS rows; MAE on scaled features")
    print(f"  surrogate            {ev.mae_scaled:.4f}  (unscaled {ev.mae_unscaled:.4f})")
    print(f"  per-bin mean         {ev.baseline_mean_mae_scaled:.4f}  surrogate is {100 * ev.improvement_over_mean:.1f} % lower")
    print(f"  per-element mean     {ev.baseline_element_mae_scaled:.4f}  surrogate is {100 * ev.improvement_over_element:.1f} % lower")


def cmd_evaluate(args) -> int:
    from dosmatgen.surrogate.checkpoint import file_sha256
    from dosmatgen.surrogate.evaluate import evaluate_surrogate

    store = _store_path(args.data)
    ev = evaluate_surrogate(args.checkpoint, store, split=args.split)
    _print_evaluation(ev)
    if args.out:
        payload = {**ev.to_dict(), "checkpoint": str(args.checkpoint), "checkpoint_sha256": file_sha256(args.checkpoint),
                   "store": str(store)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


def _safe_name(rid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rid).strip("_") or "structure"


def cmd_predict(args) -> int:
    import numpy as np

    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.io.structure_files import iter_structures
    from dosmatgen.plots.surrogate_comparison import plot_dos_curves
    from dosmatgen.surrogate.predict import SurrogatePredictor

    predictor = SurrogatePredictor.from_checkpoint(args.checkpoint, device=args.device)
    ids, crystals, failures = [], [], []
    for path in args.structures:
        try:
            for rid, item in iter_structures(path):
                if isinstance(item, InvalidRecordError):
                    failures.append(str(item))
                else:
                    ids.append(rid)
                    crystals.append(item)
        except InvalidRecordError as err:
            failures.append(str(err))
    for f in failures:
        print(f"skipped: {f}", file=sys.stderr)
    if not crystals:
        raise InvalidRecordError("no readable structure among the inputs" + (f" ({len(failures)} skipped)" if failures else ""))

    preds = predictor.predict(crystals)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = predictor.grid
    columns, names = [grid.energies], ["energy_eV"]
    for rid, c, p in zip(ids, crystals, preds):
        if predictor.target == "site":
            for k, (z_sym, row) in enumerate(zip(c.symbols, p)):
                columns.append(row)
                names.append(f"{rid}:{k}:{z_sym}")
        else:
            columns.append(p)
            names.append(f"{rid}:total_per_atom")
    csv_path = out / "predicted_dos.csv"
    unit = "states/eV per site" if predictor.target == "site" else "states/eV/atom"
    header = f"# dosmatgen surrogate prediction ({predictor.target} DOS, {unit}); energies relative to E_F\n" + ",".join(
        '"' + n.replace('"', "'") + '"' for n in names)
    np.savetxt(csv_path, np.column_stack(columns), delimiter=",", header=header, comments="", fmt="%.6g")
    n_plots = 0
    used: set[str] = set()
    for rid, c, p in list(zip(ids, crystals, preds))[: max(args.max_plots, 0)]:
        name = _safe_name(rid)
        while name in used:
            name += "_"
        used.add(name)
        curves = {f"{s} #{k}": row for k, (s, row) in enumerate(zip(c.symbols, p))} if predictor.target == "site" else {"total per atom": p}
        ylabel = "site DOS (states/eV)" if predictor.target == "site" else "DOS (states/eV/atom)"
        plot_dos_curves(curves, out / f"{name}_dos", grid=grid, title=f"{rid}: {c.formula} (surrogate)", ylabel=ylabel,
                        annotate_mae=False)
        n_plots += 1
    print(f"predicted {len(crystals)} structure(s) -> {csv_path}; {n_plots} plot(s) in {out}"
          + (f"; {len(failures)} input record(s) skipped" if failures else ""))
    return 0 if not failures else 1
