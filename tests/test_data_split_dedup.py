"""Near-duplicates across splits (issue 19): a val/test structure with a StructureMatcher twin in another split
joins the train split when a store is built, and the build reports how many moved."""

from __future__ import annotations

import numpy as np

from dosmatgen.cli.main import main
from dosmatgen.crystal import Crystal
from dosmatgen.data.build import BuildOptions, build_dataset
from dosmatgen.data.info import dataset_info, format_info
from dosmatgen.data.split import move_split_twins_to_train, split_codes
from dosmatgen.data.store import DatasetStore
from dosmatgen.io.structure_files import write_extxyz


def _rocksalt(za: int, zb: int, a: float) -> Crystal:
    lattice = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    return Crystal(np.array([za, zb]), np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), lattice)


def _cscl(za: int, zb: int, a: float) -> Crystal:
    return Crystal(np.array([za, zb]), np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]), a * np.eye(3))


def _ids_in(split_name: str, n: int, prefix: str) -> list[str]:
    code = {"train": 0, "val": 1, "test": 2}[split_name]
    out, k = [], 0
    while len(out) < n:
        cand = f"{prefix}-{k}"
        if split_codes([cand])[0] == code:
            out.append(cand)
        k += 1
    return out


def _planted_world():
    """Distinct compounds plus one planted twin: the test structure is the train structure's NaCl, 2 % larger and
    with a rattled second atom (another relaxation of the same crystal). Also a same-composition non-twin (CsCl-type
    NaCl) in val, which must stay."""
    train_ids = _ids_in("train", 4, "tr")
    test_ids = _ids_in("test", 3, "te")
    val_ids = _ids_in("val", 2, "va")
    crystals = {
        train_ids[0]: _rocksalt(11, 17, 5.64), train_ids[1]: _rocksalt(12, 8, 4.21),
        train_ids[2]: _rocksalt(20, 8, 4.81), train_ids[3]: _cscl(55, 17, 4.12),
        test_ids[0]: _rocksalt(3, 9, 4.03), test_ids[1]: _cscl(29, 30, 2.95),
        val_ids[0]: _rocksalt(19, 35, 6.60), val_ids[1]: _cscl(11, 17, 3.30),
    }
    twin = _rocksalt(11, 17, 5.64 * 1.02 ** (1 / 3))
    twin = Crystal(twin.atomic_numbers, twin.frac_coords + np.array([[0, 0, 0], [0.01, -0.005, 0.0]]), twin.lattice)
    crystals[test_ids[2]] = twin
    return crystals, train_ids[0], test_ids[2], val_ids[1]


def test_the_planted_twin_moves_to_train_and_nothing_else_moves():
    crystals, train_twin, test_twin, _ = _planted_world()
    ids = list(crystals)
    split = split_codes(ids)
    new, moves = move_split_twins_to_train(list(crystals.values()), split)
    assert [(ids[m.index], m.from_split, ids[m.twin_index]) for m in moves] == [(test_twin, "test", train_twin)]
    assert new[ids.index(test_twin)] == 0
    changed = np.flatnonzero(new != split)
    assert changed.tolist() == [ids.index(test_twin)]


def test_twins_in_val_and_test_only_join_train_together():
    a, b = _rocksalt(11, 17, 5.64), _rocksalt(11, 17, 5.70)
    new, moves = move_split_twins_to_train([a, b, _rocksalt(3, 9, 4.0)], np.array([1, 2, 0], dtype=np.int8))
    assert new.tolist() == [0, 0, 0] and sorted(m.from_split for m in moves) == ["test", "val"]
    # twins inside one split stay where they are
    same, none = move_split_twins_to_train([a, b], np.array([2, 2], dtype=np.int8))
    assert same.tolist() == [2, 2] and none == []


def test_the_build_moves_the_twin_and_reports_it(tmp_path, capsys):
    crystals, train_twin, test_twin, val_other = _planted_world()
    xyz = tmp_path / "world.extxyz"
    write_extxyz(xyz, list(crystals.values()), list(crystals))
    summary = build_dataset("extxyz", [xyz], tmp_path / "s.zarr", BuildOptions(progress=False))
    assert summary.split_dedup == {"num_moved": 1, "moved": {"val": 0, "test": 1}}
    assert "split dedup: 1 structures joined train" in summary.report()
    store = DatasetStore.open(tmp_path / "s.zarr")
    mem = store.to_memory()
    code = dict(zip(mem.ids, mem.split.tolist()))
    assert code[test_twin] == 0 and code[train_twin] == 0 and code[val_other] == 1
    assert store.info["split_dedup"]["moves"] == [{"id": test_twin, "from": "test", "twin": train_twin}]
    info = dataset_info(store)
    assert info["splits"] == {"train": 5, "val": 2, "test": 2}
    assert "split dedup: 1 structures moved to train" in format_info(info)
    # opting out keeps the id-hash splits, and says so
    assert main(["data", "build", "--source", "extxyz", str(xyz), "--out", str(tmp_path / "raw.zarr"),
                 "--no-split-dedup", "--no-progress"]) == 0
    raw = DatasetStore.open(tmp_path / "raw.zarr")
    assert dict(zip(raw.to_memory().ids, raw.to_memory().split.tolist()))[test_twin] == 2
    assert "--no-split-dedup" in raw.info["provenance"]["command"]
    assert "not recorded" in format_info(dataset_info(raw))
