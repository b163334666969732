#!/usr/bin/env python
"""Maintainer tool: an inference-only copy of a denoiser checkpoint (the EMA weights as ``model_state``; no
optimizer, scheduler or RNG state), about a quarter of the size, for shipping in dosmatgen/resources/checkpoints/.

    python tools/strip_checkpoint.py runs/small-total/best.pt dosmatgen/resources/checkpoints/dosmatgen-small-total.pt
"""

from __future__ import annotations

import dataclasses
import sys

from dosmatgen.training.checkpoint import load_checkpoint, save_checkpoint


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ckpt = load_checkpoint(args[0], map_location="cpu")
    slim = dataclasses.replace(ckpt, model_state={k: v.clone() for k, v in ckpt.inference_state(use_ema=True).items()},
                               ema_state=None, optimizer_state=None, scheduler_state=None, rng_state=None)
    save_checkpoint(args[1], slim)
    print(f"wrote {args[1]} (epoch {slim.epoch}, best validation loss {slim.best_val})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
