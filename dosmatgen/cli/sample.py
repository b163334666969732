"""``dosmatgen sample``: generate crystals from a trained denoiser (CFG, masked, template, fixed type, window,
classifier guidance, unconditional), writing a CIF zip, an extxyz and a Zarr run store.

Every input is validated before sampling starts (:func:`dosmatgen.sampling.request.prepare`)."""

from __future__ import annotations

import argparse
from dosmatgen.guidance_defaults import DEFAULT_CLASSIFIER_STRENGTH


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="generate crystals conditioned on a target DOS",
        description="Generate crystals with the predictor-corrector sampler. Outputs in --out: "
        "generated_crystals_cif.zip, generated_crystals.extxyz, store.zarr (run store), sampling.json.",
    )
    p.add_argument("--checkpoint", required=True, help="denoiser checkpoint (dosmatgen train)")
    p.add_argument("--target", default=None, help="built-in target name, DOS file (.csv/.json/.npy) or STORE.zarr:ID:SITE")
    p.add_argument("--efermi", type=float, default=0.0, help="Fermi level to subtract when the DOS file has absolute energies")
    p.add_argument("--condition-sites", default=None, help="sites conditioned on the target: 'all' or e.g. '0,2' (default 0)")
    p.add_argument("--window", nargs=2, type=float, metavar=("LO", "HI"), default=None, help="condition only on E-E_F in [LO, HI] eV")
    p.add_argument("--template", default=None, help="template structure file (CIF, zip of CIFs, extxyz)")
    p.add_argument("--t-start", type=int, default=None, help="step the template is noised to (e.g. 200, 500; T = from noise)")
    p.add_argument("--fix-type", action="append", default=[], metavar="SITE:ELEMENT", help="hold SITE's element fixed (repeatable)")
    p.add_argument("--num-atoms", default=None, help="atom counts: 6, 4-8 or 4,6 (default: the training distribution)")
    p.add_argument("--n", type=int, default=16, help="number of crystals")
    p.add_argument("--batch-size", type=int, default=64, help="crystals per sampler batch (one run-store shard each)")
    p.add_argument("--guidance", choices=("cfg", "classifier", "none"), default=None,
                   help="cfg (default with --target), classifier (needs --regressor) or none")
    p.add_argument("--w", type=float, default=1.0, help="CFG weight: (1+w)·cond − w·uncond (paper: 1; MatterGen γ = w+1)")
    p.add_argument("--regressor", default=None, help="DOS regressor checkpoint for --guidance classifier")
    p.add_argument("--strength", type=float, default=DEFAULT_CLASSIFIER_STRENGTH,
                   help=f"classifier-guidance strength (DiffCSP aug, per-site energy; default {DEFAULT_CLASSIFIER_STRENGTH:g})")
    p.add_argument("--unconditional-checkpoint", default=None,
                   help="separately trained unconditional denoiser for classifier guidance (default: the CFG model, condition dropped)")
    p.add_argument("--mask-classifier-gradients", action="store_true",
                   help="classifier guidance moves only the conditioned sites' types and coordinates (the others follow "
                        "the unconditional model; the lattice is still guided)")
    p.add_argument("--step-lr", type=float, default=5e-6, help="Langevin corrector step on X (0 disables the corrector)")
    p.add_argument("--sampling-steps", type=int, default=None, metavar="S",
                   help="S evenly spaced steps of the T-step reverse grid (default: all T; docs/sampling-steps.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record-trajectories", action="store_true", help="also write generated_trajectories.npz")
    p.add_argument("--no-ema", action="store_true", help="sample with the raw weights even when EMA weights exist")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output folder")
    # SamplingRequest fields whose flag is spelled otherwise (errors name the fields; the CLI shows the flags)
    p.set_defaults(func=_run, field_flags={"fix_types": "--fix-type"})


def _run(args) -> int:
    from dosmatgen.sampling.generate import generate
    from dosmatgen.sampling.outputs import write_outputs
    from dosmatgen.sampling.request import SamplingRequest, prepare

    request = SamplingRequest(
        checkpoint=args.checkpoint, target=args.target, efermi=args.efermi, condition_sites=args.condition_sites,
        window=tuple(args.window) if args.window else None, template=args.template, t_start=args.t_start,
        fix_types=list(args.fix_type), num_atoms=args.num_atoms, n=args.n, batch_size=args.batch_size,
        guidance=args.guidance, w=args.w, regressor=args.regressor, strength=args.strength,
        unconditional_checkpoint=args.unconditional_checkpoint,
        mask_classifier_gradients=args.mask_classifier_gradients, step_lr=args.step_lr, sampling_steps=args.sampling_steps,
        seed=args.seed, record_trajectories=args.record_trajectories, use_ema=not args.no_ema, device=args.device,
    )
    prepared = prepare(request)  # every bad input fails here, before sampling
    result = generate(prepared, progress=True)
    summary = {
        "checkpoint": str(args.checkpoint), "target": args.target, "guidance": prepared.guidance_name, "w": args.w,
        "condition_sites": args.condition_sites, "window": args.window, "template": args.template,
        "t_start": prepared.t_start, "fix_types": list(args.fix_type), "num_atoms": args.num_atoms,
        "step_lr": args.step_lr, "sampling_steps": args.sampling_steps, "seed": args.seed, "strength": args.strength if prepared.guidance_name == "classifier" else None,
        "mask_classifier_gradients": args.mask_classifier_gradients,
    }
    paths = write_outputs(args.out, result, batch_size=args.batch_size, seed=args.seed,
                          conditioning=prepared.target_features, summary=summary)
    print(f"sampled {result.n_valid}/{len(result.crystals)} valid crystals ({prepared.guidance_name} guidance)")
    for kind, path in paths.items():
        print(f"{kind:13s} {path}")
    return 0
