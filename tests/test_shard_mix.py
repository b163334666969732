"""Balanced shards: every shard gets the same mix of candidate sizes (relaxation cost grows with atom count)."""

from __future__ import annotations

import numpy as np

from dosmatgen.screen.shard_mix import balanced_order


def _shard_totals(order, shard_size):
    return [int(order[i:i + shard_size].sum()) for i in range(0, order.size, shard_size)]


def test_paper_plan_shards_have_equal_mixes():
    plan = np.repeat([4, 5, 6, 7, 8], 2000)  # the NERSC config: 2,000 per size, 250 per shard -> 40 shards
    order = balanced_order(plan, 250)
    assert sorted(order.tolist()) == sorted(plan.tolist())
    for i in range(0, order.size, 250):
        counts = np.bincount(order[i:i + 250], minlength=9)[4:]
        assert counts.tolist() == [50, 50, 50, 50, 50]
    sorted_totals = _shard_totals(plan, 250)
    assert max(sorted_totals) / min(sorted_totals) == 2.0  # 8-atom shards vs 4-atom shards before
    assert len(set(_shard_totals(order, 250))) == 1


def test_uneven_plan_is_balanced_within_one_candidate():
    plan = np.repeat([2, 3, 9], [7, 5, 4])
    order = balanced_order(plan, 5)  # 16 rows -> shards of 5, 5, 5, 1
    totals = _shard_totals(order, 5)
    assert sorted(order.tolist()) == sorted(plan.tolist())
    assert max(totals[:3]) - min(totals[:3]) <= 9
    nines = [int(np.sum(order[i:i + 5] == 9)) for i in range(0, 16, 5)]
    assert sum(nines) == 4 and max(nines[:3]) - min(nines[:3]) <= 1
    np.testing.assert_array_equal(order, balanced_order(plan, 5))  # deterministic


def test_screen_plans_use_the_balanced_order(tmp_path):
    from screen_helpers import write_config

    from dosmatgen.screen.config import load_screen_config
    from dosmatgen.screen.targets import target_plans

    cfg = load_screen_config(write_config(tmp_path / "c.yaml", tmp_path / "run"))  # sizes [2, 3] x 4, shards of 3
    (plan,) = target_plans(cfg)
    shards = [plan.num_atoms[i:i + 3].tolist() for i in range(0, 8, 3)]
    assert all(2 in s and 3 in s for s in shards[:2])
