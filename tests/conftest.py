"""Fixtures shared by several test files.

* ``one_torch_thread``: torch on one intra-op thread for a whole test module, restored afterwards. Modules that
  train or run tiny models opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; on a shared
  2-core machine one thread is faster and less noisy than two fighting each other.
* ``matcher``: one :class:`~dosmatgen.metrics.timed_matcher.TimedStructureMatcher` (its worker process is
  started once) per module.

Plain helper functions (synthetic stores, crystals, fake engines) live in the ``*_helpers.py`` modules next to this
file; tests import them by name because pytest puts this folder on ``sys.path``.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def matcher():
    from dosmatgen.metrics.timed_matcher import TimedStructureMatcher

    with TimedStructureMatcher(timeout_s=60) as m:
        yield m
