"""What the training engine needs from data-parallel workers: rank, world size, device and the collectives.

The library never starts a process group itself. :class:`SingleProcess` is the default (no collectives); a
data-parallel launcher (``cluster/ray_train.py`` for Ray Train) passes its own object with the same methods.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class DistributedHooks(Protocol):
    """Rank, world size, device and collectives of one training process."""

    rank: int
    world_size: int
    device: torch.device

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise SUM of ``tensor`` over all ranks, as a new tensor on ``tensor``'s device and dtype."""

    def all_gather_object(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order."""

    def barrier(self) -> None:
        """Wait until every rank arrives here."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model as the training step calls it (e.g. wrapped in DistributedDataParallel)."""


class SingleProcess:
    """One process, no collectives: all_reduce returns its input, all_gather_object a list of one."""

    rank = 0
    world_size = 1

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        return None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model
