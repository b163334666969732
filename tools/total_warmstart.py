#!/usr/bin/env python
"""Maintainer tool (issue 16): a warm-start checkpoint for the total-DOS generator from a site-DOS denoiser.

The site-conditioned ``dosmatgen-small`` and a ``cond_mode: total`` model of the same width differ only in the
condition projection (site: 2 x 400 inputs, total: 2 x 256 inputs). This writes a checkpoint with the total-mode
config that carries every other weight of the source (EMA weights) and a freshly initialised condition projection,
so ``dosmatgen train --init-from OUT.pt`` fine-tunes it:

    python tools/total_warmstart.py bundled:dosmatgen-small configs/model/small-total.yaml runs/total-init.pt
"""

from __future__ import annotations

import argparse
import sys

import torch

from dosmatgen.checkpoint_paths import resolve_checkpoint
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.training.checkpoint import DenoiserCheckpoint, load_checkpoint, save_checkpoint
from dosmatgen.training.config import load_run_config


def total_init(source: str, config_path: str, seed: int = 0) -> DenoiserCheckpoint:
    config = load_run_config(config_path)
    if config.model.cond_mode != "total":
        raise SystemExit(f"{config_path}: model.cond_mode must be 'total', got {config.model.cond_mode!r}")
    ckpt = load_checkpoint(resolve_checkpoint(source), map_location="cpu")
    torch.manual_seed(seed)
    target = CSPNetDenoiser(config.model).state_dict()
    weights = ckpt.inference_state(use_ema=True)
    copied, fresh = 0, []
    for name, value in target.items():
        src = weights.get(name)
        if src is not None and src.shape == value.shape:
            target[name] = src.detach().clone()
            copied += 1
        else:
            fresh.append(name)
    print(f"copied {copied} tensors from {source}; freshly initialised: {', '.join(fresh) or 'none'}")
    return DenoiserCheckpoint(model_config=config.model, diffusion_config=ckpt.diffusion_config, model_state=target,
                              scalers=ckpt.scalers, element_vocabulary=ckpt.element_vocabulary,
                              num_atoms_counts=ckpt.num_atoms_counts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("config")
    p.add_argument("out")
    args = p.parse_args(argv)
    save_checkpoint(args.out, total_init(args.source, args.config))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
