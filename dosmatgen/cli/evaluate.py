"""``dosmatgen evaluate``: the reconstruction protocol of the DOSMatGen paper (Tables 1 and 2) on a dataset split.

``dosmatgen evaluate --checkpoint CKPT [--data STORE] --split test --t-start 200 500 1000
--guidance cfg classifier none uncond [--surrogate CKPT] [--regressor CKPT] [--limit N] [--seed S] [--step-lr X] [--w W]
[--relax] --out DIR [--resume]``

Each selected structure of the split is noised to t_start (t_start = T: from noise with its atom count),
regenerated with all its sites conditioned on their DOS, and compared with itself. Writes ``DIR/metrics.json``,
``DIR/metrics.md`` (our numbers next to the paper's), ``DIR/report.md``, ``DIR/figures/`` and ``DIR/structures/``.
The split the checkpoint was trained on is refused unless ``--force-split``.
"""

from __future__ import annotations

import argparse
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="reconstruction protocol (paper Tables 1-2): DOS match, structure match, validity",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="denoiser checkpoint (dosmatgen train)")
    p.add_argument("--data", default=None, help="dataset store (.zarr) with site DOS; default: the bundled GPAW dataset")
    p.add_argument("--split", default="test", help="split to reconstruct (default test)")
    p.add_argument("--t-start", type=int, nargs="+", default=[200, 500, 1000], metavar="T",
                   help="noise levels (diffusion steps, 1..T; T = from noise). Default: the paper's 200 500 1000")
    p.add_argument("--guidance", nargs="+", choices=("cfg", "classifier", "none", "uncond"), default=["cfg", "classifier", "none", "uncond"],
                   help="guidance modes (default all four; classifier needs --regressor, else it is reported as not run; uncond = condition masked out)")
    p.add_argument("--surrogate", default=None, help="forward site-DOS surrogate checkpoint (DOS match); without it DOS match is not run")
    p.add_argument("--regressor", default=None, help="DOS regressor checkpoint for classifier guidance (dosmatgen train-regressor)")
    p.add_argument("--unconditional-checkpoint", default="bundled:dosmatgen-small-uncond", metavar="CKPT",
                   help="classifier guidance's unconditional model (default bundled:dosmatgen-small-uncond; 'cfg' = the "
                        "denoiser with its condition dropped)")
    p.add_argument("--condition-control", choices=("none", "masked", "shuffled"), default="none",
                   help="negative control: mask the condition out in every mode, or condition each site on another "
                        "structure's site DOS (default none: the structures' own DOS)")
    p.add_argument("--limit", type=int, default=None, help="at most N structures of the split (seeded random subset; default all)")
    p.add_argument("--seed", type=int, default=0, help="selects the subset and seeds the sampler (default 0)")
    p.add_argument("--step-lr", type=float, default=5e-6, help="Langevin corrector step on X (0 disables it; default 5e-6)")
    p.add_argument("--sampling-steps", type=int, default=None, metavar="S",
                   help="S evenly spaced steps of the T-step reverse grid (default: all T; docs/sampling-steps.md)")
    p.add_argument("--w", type=float, default=1.0, help="CFG weight: (1+w)·cond − w·uncond (paper: 1)")
    p.add_argument("--strength", type=float, default=DEFAULT_CLASSIFIER_STRENGTH,
                   help=f"classifier-guidance strength (DiffCSP aug, per-site energy; default {DEFAULT_CLASSIFIER_STRENGTH:g})")
    p.add_argument("--batch-size", type=int, default=32, help="structures per sampler batch (default 32)")
    p.add_argument("--match-timeout", type=float, default=30.0, help="StructureMatcher time limit per comparison, s (time-outs are counted)")
    p.add_argument("--no-novelty", action="store_true", help="skip the novelty comparison against the training split")
    p.add_argument("--relax", action="store_true", help="MLFF formation energies of generated and true structures (slow on CPU)")
    p.add_argument("--relax-mlff", default="chgnet", help="force field for --relax (default chgnet)")
    p.add_argument("--relax-steps", type=int, default=300, help="FIRE steps per structure for --relax (default 300)")
    p.add_argument("--examples", type=int, default=4, help="DOS comparison panels per setting (default 4)")
    p.add_argument("--force-split", action="store_true", help="evaluate even on a split the checkpoint was trained on")
    p.add_argument("--no-ema", action="store_true", help="sample with the raw weights even when EMA weights exist")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="reuse the settings an interrupted run with the same inputs finished in OUT/settings/")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dosmatgen.evaluation.protocol import evaluate
    from dosmatgen.evaluation.tables import fmt
    from dosmatgen.training.checkpoint import load_checkpoint

    if load_checkpoint(args.checkpoint, map_location="cpu").model_config.cond_mode == "total":
        from dosmatgen.design.cdosgen_check import evaluate_total_checkpoint

        return evaluate_total_checkpoint(args.checkpoint, args.data, args.split, args.surrogate, args.limit, args.seed,
                                         args.w, args.device, Path(args.out))

    report = evaluate(
        args.checkpoint, args.data, split=args.split, t_starts=args.t_start, guidance=args.guidance,
        surrogate=args.surrogate, regressor=args.regressor, unconditional=args.unconditional_checkpoint, limit=args.limit, seed=args.seed, out=args.out,
        step_lr=args.step_lr, sampling_steps=args.sampling_steps, w=args.w, strength=args.strength, batch_size=args.batch_size,
        match_timeout_s=args.match_timeout, novelty=not args.no_novelty, relax=args.relax, relax_mlff=args.relax_mlff,
        relax_max_steps=args.relax_steps, n_examples=args.examples, force_split=args.force_split,
        use_ema=not args.no_ema, device=args.device, resume=args.resume, condition_control=args.condition_control,
    )
    cs = report["conditioning_set"]
    print(f"evaluated {cs['n_selected']} structures of split {report['provenance']['split']!r} in {report['timing']['total_s']:.1f} s")
    if report["provenance"]["resumed_settings"]:
        print(f"  reused from {Path(args.out) / 'settings'}: {', '.join(report['provenance']['resumed_settings'])}")
    for g, by_t in report["results"].items():
        for t, e in by_t.items():
            if e["status"] != "ok":
                print(f"  {g:10s} t_start {t:>5s}: {e['status']}")
                continue
            m = e["metrics"]
            mae = m.get("dos_match", {}).get("mae_gen_vs_target", {}).get("value")
            print(f"  {g:10s} t_start {t:>5s}: structure match {fmt(m['structure_match']['rate'], True)}, "
                  f"composition match {fmt(m['composition_match']['rate'], True)}, valid {fmt(m['validity']['valid_rate'], True)}, "
                  f"DOS MAE(ŷ_gen, y) {fmt(mae)}")
    out = Path(args.out)
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.md'}, {out / 'report.md'}")
    return 0
