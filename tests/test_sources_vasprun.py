"""The VASP vasprun.xml reader, on the hand-built 2-atom Si fixture (LORBIT = 11) and variants of it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from source_test_helpers import VASPRUN_SI, assert_located, load_script, split

from dosmatgen.data.sources import SOURCES, read_vasprun
from dosmatgen.errors import InvalidRecordError

make = load_script("make_vasprun")


def test_fixture_is_what_the_generator_writes():
    assert VASPRUN_SI.read_text() == make.make_vasprun_xml()


def test_si_record_matches_the_generated_densities():
    assert SOURCES["vasprun"] is read_vasprun
    (rec,) = read_vasprun(VASPRUN_SI)
    assert rec.id == "Si" and rec.source == "vasprun"
    assert rec.crystal.symbols == ["Si", "Si"]
    assert np.allclose(rec.crystal.frac_coords[1], [0.25, 0.25, 0.25])
    assert rec.crystal.volume == pytest.approx(5.43**3 / 4)
    assert rec.efermi == pytest.approx(make.EFERMI) and rec.energy == pytest.approx(make.E_TOTAL)
    e = make.energy_grid()
    assert rec.energies.shape == (make.N_ENERGIES,)
    assert np.allclose(rec.energies, np.round(e, 4) - make.EFERMI, atol=1e-4)  # shifted to E_F
    lm = make.site_lm_dos(e)  # columns s, py, pz, px, 5 x d
    expected = np.stack([lm[:, 0], lm[:, 1:4].sum(axis=1), lm[:, 4:].sum(axis=1)])
    assert rec.site_dos.shape == (2, 3, make.N_ENERGIES)
    for site in range(2):
        assert np.allclose(rec.site_dos[site], expected, atol=1e-4)
    assert np.allclose(rec.total_dos, np.round(1.1 * 2 * lm.sum(axis=1), 4), atol=1e-4)
    gap = (rec.energies > 0.05) & (rec.energies < make.GAP - 0.05)
    assert gap.any() and np.all(rec.total_dos[gap] == 0)
    assert rec.metadata["incar"]["LORBIT"] == 11 and rec.metadata["converged"] is True


def test_spin_polarised_run_is_summed_over_spins(tmp_path):
    path = tmp_path / "vasprun.xml"
    path.write_text(make.make_vasprun_xml(spin_polarized=True))
    (pol,) = read_vasprun(path)
    (ref,) = read_vasprun(VASPRUN_SI)
    assert pol.metadata["spin_polarized"] is True
    # each spin holds half the densities rounded to 1e-4, so a channel summed over 5 d orbitals x 2 spins
    # differs from the unpolarised file by at most 1e-3
    assert np.allclose(pol.site_dos, ref.site_dos, atol=1e-3) and np.allclose(pol.total_dos, ref.total_dos, atol=1e-3)
    assert pol.site_dos.max() > 0.1


def _drop_first_row_after(text: str, marker: str) -> str:
    start = text.index(marker)
    row = re.compile(r"\s*<r>[^<]*</r>").search(text, start)
    return text[: row.start()] + text[row.end() :]


def test_folder_of_runs_locates_each_bad_run_and_reads_the_good_one(tmp_path):
    good = make.make_vasprun_xml()
    runs = {
        "good": good,
        "no-partial": make.make_vasprun_xml(partial=False),
        "no-fermi": make.make_vasprun_xml(efermi=None),
        "truncated": good[: len(good) // 2],
        "unknown-element": make.make_vasprun_xml(elements=("Si", "Xx")),
        "short-dos": _drop_first_row_after(good, 'comment="ion 2"'),
    }
    for name, text in runs.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "vasprun.xml").write_text(text)
    records, errors = split(read_vasprun(tmp_path / "runs"))
    assert [r.id for r in records] == ["good"]
    by_record = {e.record: e for e in errors}
    expected = {
        "no-partial": "no site-projected DOS (run VASP with LORBIT = 11)",
        "no-fermi": "missing Fermi level",
        "truncated": "cannot parse vasprun.xml",
        "unknown-element": "'Xx' is not a valid Element",
        "short-dos": "site 1 s DOS has 79 energies, expected 80",
    }
    assert sorted(by_record) == sorted(expected)
    for name, problem in expected.items():
        assert_located(by_record[name], file=f"runs/{name}/vasprun.xml", record=name, problem=problem)
    # without the site-DOS requirement a total-DOS-only run is accepted
    (total_only,) = read_vasprun(tmp_path / "runs" / "no-partial" / "vasprun.xml", require_site_dos=False)
    assert total_only.site_dos is None and total_only.total_dos.shape == (make.N_ENERGIES,)


def test_missing_input_raises(tmp_path):
    with pytest.raises(InvalidRecordError, match="no such file"):
        list(read_vasprun(tmp_path / "nope.xml"))
    with pytest.raises(InvalidRecordError, match="no vasprun"):
        list(read_vasprun(tmp_path))
