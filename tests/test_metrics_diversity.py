"""Uniqueness within a batch and novelty against a training set."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.diversity import novelty, uniqueness
from dosmatgen.metrics.inputs import MetricInputError

ROCKSALT = Crystal.from_pymatgen(Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
CSCL_TYPE = Crystal.from_pymatgen(Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
SI = Crystal.from_pymatgen(Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]))


def test_uniqueness_groups_equivalent_structures(matcher):
    supercell = Crystal.from_pymatgen(ROCKSALT.to_pymatgen() * (1, 1, 2))
    r = uniqueness([ROCKSALT, supercell, CSCL_TYPE, SI, None], matcher=matcher)
    assert (r.n, r.n_valid, r.n_unique) == (5, 4, 3)
    assert r.rate == pytest.approx(0.75)
    assert r.group_of == [0, 0, 2, 3, -1]
    assert uniqueness([SI, SI, SI], matcher=matcher).n_unique == 1


def test_uniqueness_respects_given_validity(matcher):
    r = uniqueness([ROCKSALT, CSCL_TYPE], validity=[True, False], matcher=matcher)
    assert (r.n_valid, r.n_unique, r.rate) == (1, 1, 1.0)
    with pytest.raises(MetricInputError):
        uniqueness([ROCKSALT], validity=[True, False], matcher=matcher)


def test_novelty_against_a_training_set(matcher):
    train = [ROCKSALT, SI]
    rattled_si = Crystal(SI.atomic_numbers, SI.frac_coords + 0.003, SI.lattice)
    r = novelty([rattled_si, CSCL_TYPE, None], train, matcher=matcher)
    assert (r.n, r.n_valid, r.n_novel, r.n_reference) == (3, 2, 1, 2)
    assert r.novel == [False, True, False]
    assert r.rate == pytest.approx(0.5)


def test_empty_batch():
    r = uniqueness([], timeout_s=None)
    assert r.n == 0 and np.isnan(r.rate)
    assert np.isnan(novelty([None], [SI], timeout_s=None).rate)
