"""The shard stages hand out their units costliest first (most atoms), so a large shard does not end a stage alone."""

from __future__ import annotations

import numpy as np
from screen_helpers import small_layout

from dosmatgen.runstore import RunStore
from dosmatgen.runstore.layout import TargetPlan
from dosmatgen.screen.pending import pending_shards


def test_units_come_largest_shard_first_ties_in_target_and_shard_order(tmp_path):
    # shard_size 4: a has shards of 4, 16 and 8 atoms in all, b of 16 and 6
    plans = [TargetPlan("a", np.array([1] * 4 + [4] * 4 + [2] * 4)), TargetPlan("b", np.array([4] * 4 + [3] * 2))]
    store = RunStore.create(tmp_path / "run", small_layout(shard_size=4, max_atoms=4), plans)
    assert pending_shards(store, "sample") == [("a", 1), ("b", 0), ("a", 2), ("b", 1), ("a", 0)]


def test_done_shards_are_left_out_and_the_order_is_kept(tmp_path):
    plans = [TargetPlan("a", np.array([1] * 4 + [4] * 4 + [2] * 4))]
    store = RunStore.create(tmp_path / "run", small_layout(shard_size=4, max_atoms=4), plans)
    store.manifest.mark_done("sample", "a", 1)
    assert pending_shards(store, "sample") == [("a", 2), ("a", 0)]
