"""``dosmatgen data build | info | export``: exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dosmatgen.cli.main import main
from dosmatgen.data.bundled import bundled_dataset_path
from dosmatgen.data.store import DatasetStore
from dosmatgen.io.structure_files import read_structures

from store_fixture_helpers import write_synthetic_gpaw_npz


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "in" / "dataset.npz"
    ids = write_synthetic_gpaw_npz(path, n=10)
    return path, ids


def test_build_then_info_then_export(npz, tmp_path, capsys):
    path, ids = npz
    out = tmp_path / "cli.zarr"
    rc = main(["data", "build", "--source", "gpaw", str(path), "--out", str(out), "--part-size", "3", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "10 structures, 20 sites" in text and "skipped 0" in text
    store = DatasetStore.open(out)
    assert store.ids == ids
    assert store.info["provenance"]["command"].startswith("dosmatgen data build --source gpaw")

    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    sizes = store.split_sizes()
    assert "structures: 10   sites: 20" in text
    assert f"splits: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}" in text
    assert "atoms per structure:" in text and "band_gap" in text

    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_structures"] == 10 and info["atoms_per_structure"] == {"2": 10}
    assert info["splits"] == sizes

    for fmt, name in (("extxyz", "all.extxyz"), ("zip", "all.zip"), ("cif", "all.cif"), ("cif", "cifdir")):
        target = tmp_path / name
        assert main(["data", "export", str(out), "--format", fmt, "--out", str(target)]) == 0
        assert "wrote 10 structures" in capsys.readouterr().out
        got_ids, crystals = read_structures(target)
        assert sorted(got_ids) == sorted(ids)
    got_ids, crystals = read_structures(tmp_path / "all.extxyz")
    for rid, c in zip(got_ids, crystals):
        assert c.equals(store.crystal(store.ids.index(rid)), atol=1e-6)

    test_target = tmp_path / "test.extxyz"
    assert main(["data", "export", str(out), "--format", "extxyz", "--out", str(test_target), "--split", "test"]) == 0
    capsys.readouterr()
    if sizes["test"]:
        assert sorted(read_structures(test_target)[0]) == sorted(store.ids[i] for i in store.split_indices("test"))


def test_exit_codes(npz, tmp_path, capsys):
    path, _ = npz
    out = tmp_path / "e.zarr"
    assert main(["data", "build", "--source", "gpaw", str(path), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    # an existing store without --overwrite: one-line error, exit 2
    assert main(["data", "build", "--source", "gpaw", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert main(["data", "build", "--source", "gpaw", str(path), "--out", str(out), "--overwrite", "--no-progress"]) == 0
    capsys.readouterr()
    # nothing could be built: exit 1 with the reasons
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["data", "build", "--source", "gpaw", str(bad), "--out", str(tmp_path / "n.zarr"), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert "nothing built" in text and "bad.npz" in text and "corrupt" in text
    assert not (tmp_path / "n.zarr").exists()
    # missing and corrupt stores: one line on stderr, exit 2, no traceback
    for store in (tmp_path / "missing.zarr", bad):
        assert main(["data", "info", str(store)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and str(store) in err


def test_cli_subprocess_reports_cleanly(tmp_path):
    """The installed console entry point prints one line for a missing store (no traceback)."""
    r = subprocess.run([sys.executable, "-m", "dosmatgen.cli.main", "data", "info", str(tmp_path / "nope.zarr")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"dosmatgen data: error: no dataset store at {tmp_path / 'nope.zarr'} (no such file or directory)"


def test_info_on_bundled_dataset(capsys):
    assert main(["data", "info", str(bundled_dataset_path())]) == 0
    text = capsys.readouterr().out
    assert "structures: 3020   sites: 12211   elements: 63" in text
    assert "cdvae-perov_5 675" in text and "prototype-chgnet-relaxed 2234" in text
    # atoms-per-structure histogram as counted in the dataset's README
    for n, count in {1: 61, 2: 748, 3: 273, 4: 631, 5: 840, 6: 296, 7: 33, 8: 138}.items():
        assert any(line.split()[:2] == [str(n), str(count)] for line in text.splitlines()), (n, count)


def test_compute_subcommand_is_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "compute", "--help"])
    assert exc.value.code == 0
    assert "--engine" in capsys.readouterr().out


def test_build_real_gpaw_subset_and_csv(tmp_path, capsys):
    """Real GPAW rows (tests/data/gpaw_subset: 12 structures + 2 failure entries) and a perov_5 CSV head."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    out = tmp_path / "subset.zarr"
    assert main(["data", "build", "--source", "gpaw", str(data / "gpaw_subset"), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "12 structures, 47 sites" in text and "read 14 records" in text and "skipped 2" in text
    assert "[record dcdft-Ar]: GPAW calculation failed: no Fermi level" in text
    store = DatasetStore.open(out)
    i = store.ids.index("target-IrO2")
    assert store.crystal(i).atomic_numbers.tolist()[:2] == [77, 77]
    # rutile IrO2 is a metal: non-zero DOS at E_F
    assert store.properties["dos_fermi"][i] > 0.1

    csv_out = tmp_path / "perov.zarr"
    rc = main(["data", "build", "--source", "csv", str(data / "structures" / "perov_5_val_head.csv"), "--out", str(csv_out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "structures only" in text
    csv_store = DatasetStore.open(csv_out)
    assert not csv_store.has_dos and csv_store.num_structures >= 1
    assert set(np.unique(csv_store.num_atoms)) == {5}  # perov_5: five atoms per cell
    assert main(["data", "info", str(csv_out)]) == 0
    assert "structures only" in capsys.readouterr().out


def test_output_piped_into_head_is_not_an_error():
    """``dosmatgen data info STORE | true``: the reader is gone before the first write (``true`` exits at once,
    Python takes a second to start); no traceback, exit 0 (before the fix: BrokenPipeError, exit 1)."""
    import subprocess
    import sys

    from dosmatgen.data.bundled import bundled_dataset_path

    cmd = f"'{sys.executable}' -m dosmatgen.cli.main data info '{bundled_dataset_path()}' | true"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
