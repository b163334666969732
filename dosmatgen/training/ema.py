"""The exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``)."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of ``model`` (parameters and buffers) with ``decay``; None when ``decay`` is 0. Build it from the
    bare model, before any DistributedDataParallel wrapper, so that its state keys are ``module.<name>``."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
