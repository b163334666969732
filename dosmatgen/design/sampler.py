"""The sample stage of a design run: the total-DOS generator (``cond_mode: total``) under the screen's Sampler
contract (:mod:`dosmatgen.screen.stages`).

:class:`TotalDosSampler` reads the conditioning total DOS from ``target.conditioning``: (256,) for every candidate,
or (n, 256), one row per candidate of the shard (unscaled states/eV/atom on TOTAL_GRID). It scales them with the
checkpoint's ``total`` scaler and samples with classifier-free guidance (weight ``w``).
:meth:`dosmatgen.screen.stages.TargetContext.for_shard` hands a shard its rows of a design run's (n, 256) conditioning.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dosmatgen.checkpoint_paths import TOTAL_DOS_GENERATOR
from dosmatgen.crystal import Crystal
from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.screen.library_stages import DiffusionSampler
from dosmatgen.screen.stages import Sampler, TargetContext


class TotalDosSampler(DiffusionSampler):
    """Sampler contract around a total-DOS-conditioned checkpoint (CheckpointError for any other kind)."""

    def __init__(self, checkpoint: str, *, w: float = 1.0, step_lr: float = 5e-6, use_ema: bool = True,
                 device: str = "cpu", sampling_steps: int | None = None) -> None:
        from dosmatgen.checkpoint_paths import resolve_checkpoint
        from dosmatgen.sampling.total_condition import total_scaler

        super().__init__(str(resolve_checkpoint(checkpoint)), guidance="cfg", w=w, step_lr=step_lr, use_ema=use_ema, device=device,
                         sampling_steps=sampling_steps)
        mode = self.base.checkpoint.model_config.cond_mode
        if mode != "total":
            raise CheckpointError(f"{checkpoint}: design needs a total-DOS generator (cond_mode 'total'), this one has cond_mode {mode!r}")
        self.scaler = total_scaler(self.base.checkpoint.scalers, checkpoint)

    def __call__(self, target: TargetContext, num_atoms: np.ndarray, seed: int) -> list[Crystal | None]:
        import torch

        from dosmatgen.sampling.generate import generate
        from dosmatgen.sampling.total_condition import check_total_dos

        if target.conditioning is None:
            raise InvalidRecordError(f"target {target.id!r}: a design run needs a conditioning total DOS per candidate")
        n = int(len(num_atoms))
        dos = check_total_dos(target.conditioning, f"conditioning total DOS of {target.id!r}")
        if dos.ndim == 2 and dos.shape[0] != n:
            raise InvalidRecordError(f"target {target.id!r}: {dos.shape[0]} conditioning rows for {n} candidates")
        scaled = torch.as_tensor(self.scaler.transform(dos.astype(np.float32)), dtype=torch.float32)
        request = dataclasses.replace(self.base.request, n=n, batch_size=n, seed=int(seed), w=self.w)
        p = dataclasses.replace(self.base, request=request, guidance_name="cfg", target_name=target.id,
                                target_features=dos, target_scaled=scaled,
                                num_atoms=torch.as_tensor(np.asarray(num_atoms), dtype=torch.long))
        return list(generate(p).crystals)


def load_total_dos_sampler(checkpoint: str = TOTAL_DOS_GENERATOR, w: float = 1.0, step_lr: float = 5e-6,
                           use_ema: bool = True, device: str = "cpu", sampling_steps: int | None = None) -> TotalDosSampler:
    return TotalDosSampler(checkpoint, w=w, step_lr=step_lr, use_ema=use_ema, device=device, sampling_steps=sampling_steps)
