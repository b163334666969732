"""Structure and composition match rates, with time-outs counted."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from dosmatgen.crystal import Crystal
from dosmatgen.metrics.inputs import MetricInputError
from dosmatgen.metrics.structure_match import composition_match_rate, structure_match_rate
from dosmatgen.metrics.timed_matcher import MatchOutcome, TimedStructureMatcher

NACL = Crystal.from_pymatgen(Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4,
                                       [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                                        [0.5, 0.5, 0.5], [0, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0]]))
CSCL = Crystal.from_pymatgen(Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
NACL_CSCL_TYPE = Crystal.from_pymatgen(Structure(Lattice.cubic(3.4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def _supercell(c: Crystal) -> Crystal:
    return Crystal.from_pymatgen(c.to_pymatgen() * (2, 1, 1))


def _rattled(c: Crystal, amp: float, seed=0) -> Crystal:
    rng = np.random.default_rng(seed)
    return Crystal(c.atomic_numbers, c.frac_coords + rng.normal(0, amp, c.frac_coords.shape), c.lattice)


def test_identical_supercell_and_rattled_structures_match(matcher):
    gen = [NACL, _supercell(NACL), _rattled(NACL, 0.005), CSCL]
    ref = [NACL, NACL, NACL, CSCL]
    r = structure_match_rate(gen, ref, matcher=matcher)
    assert r.n == 4 and r.n_matched == 4 and r.rate == 1.0
    assert r.matcher_kwargs == {"stol": 0.5, "angle_tol": 10.0, "ltol": 0.3}
    assert 0.0 <= r.mean_rms < 0.05


def test_different_structures_and_invalid_inputs_do_not_match(matcher):
    gen = [NACL_CSCL_TYPE, None, (np.array([11]), np.array([[np.nan, 0, 0]]), np.eye(3))]
    ref = [NACL, NACL, NACL]
    r = structure_match_rate(gen, ref, matcher=matcher)
    assert (r.n, r.n_matched, r.n_no_match, r.n_invalid) == (3, 0, 1, 2)
    assert r.rate == 0.0 and r.rate_completed == 0.0
    assert r.outcomes == ["no_match", "invalid", "invalid"]


@pytest.mark.slow
def test_timeouts_are_counted_not_dropped():
    with TimedStructureMatcher(timeout_s=1e-4) as m:
        r = structure_match_rate([NACL, NACL], [NACL, NACL], matcher=m)
        assert m.stats["timeout"] == 2
        assert r.n == 2 and r.n_timeout == 2 and r.n_matched == 0 and r.rate == 0.0
        assert np.isnan(r.rate_completed)
        # the matcher recovers after a time-out: a fresh worker serves the next call
        m.timeout_s = 60
        assert m.compare(NACL, NACL).outcome is MatchOutcome.MATCH


def test_in_process_matching_without_timeout():
    r = structure_match_rate([NACL], [_supercell(NACL)], timeout_s=None)
    assert r.n_matched == 1 and r.timeout_s is None


def test_composition_match_uses_reduced_compositions():
    kcl = Crystal([19, 17], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 4)
    r = composition_match_rate([_supercell(NACL), NACL_CSCL_TYPE, kcl, None], [NACL, NACL, NACL, NACL])
    assert (r.n, r.n_matched, r.n_invalid) == (4, 2, 1)
    assert r.rate == pytest.approx(0.5)


def test_unpaired_inputs_are_rejected():
    with pytest.raises(MetricInputError, match="paired"):
        composition_match_rate([NACL], [NACL, NACL])
    with pytest.raises(MetricInputError, match="paired"):
        structure_match_rate([NACL], [], timeout_s=None)
