"""Crystal (A, X, L) data model: validation, conversions, batching round trips."""

import numpy as np
import pytest

from dosmatgen.batch import batch_to_crystals, collate_crystals
from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError


def _random_crystal(rng, n):
    lat = np.diag(rng.uniform(3.0, 6.0, 3)) + rng.normal(0, 0.3, (3, 3))
    return Crystal(rng.integers(1, 84, n), rng.random((n, 3)), lat)


def test_coordinates_are_wrapped_into_unit_cell():
    c = Crystal([8], [[1.25, -0.25, 1.0]], np.eye(3) * 4)
    np.testing.assert_allclose(c.frac_coords, [[0.25, 0.75, 0.0]])
    assert np.all(c.frac_coords < 1.0) and np.all(c.frac_coords >= 0.0)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_pymatgen_and_ase_round_trips_are_lossless(n):
    rng = np.random.default_rng(n)
    c = _random_crystal(rng, n)
    assert Crystal.from_pymatgen(c.to_pymatgen()).equals(c, atol=1e-12)
    assert Crystal.from_ase(c.to_ase()).equals(c, atol=1e-12)


def test_batch_round_trip_and_offsets():
    rng = np.random.default_rng(0)
    crystals = [_random_crystal(rng, n) for n in (2, 5, 1, 8)]
    site = [rng.random((c.num_atoms, 400)).astype(np.float32) for c in crystals]
    batch = collate_crystals(crystals, node_fields=[{"site_dos": s} for s in site])
    assert batch.lattice.shape == (4, 3, 3)
    assert batch.ptr.tolist() == [0, 2, 7, 8, 16]
    assert batch.site_dos.shape == (16, 400)
    back = batch_to_crystals(batch)
    for a, b in zip(crystals, back):
        assert a.equals(b, atol=1e-5)  # float32 in the batch


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(atomic_numbers=[0], frac_coords=[[0, 0, 0]], lattice=np.eye(3)), "unknown element"),
        (dict(atomic_numbers=[120], frac_coords=[[0, 0, 0]], lattice=np.eye(3)), "unknown element"),
        (dict(atomic_numbers=[1, 1], frac_coords=[[0, 0, 0]], lattice=np.eye(3)), "coordinate rows"),
        (dict(atomic_numbers=[1], frac_coords=[[0, 0, 0]], lattice=np.eye(2)), "lattice must be 3x3"),
        (dict(atomic_numbers=[1], frac_coords=[[np.nan, 0, 0]], lattice=np.eye(3)), "non-finite"),
    ],
)
def test_invalid_crystals_are_rejected_with_a_reason(kwargs, message):
    with pytest.raises(InvalidRecordError, match=message):
        Crystal(**kwargs)


def test_geometry_validation():
    Crystal([14, 14], [[0, 0, 0], [0.25, 0.25, 0.25]], np.eye(3) * 5.43).validate_geometry()
    with pytest.raises(InvalidRecordError, match="on top of each other"):
        Crystal([14, 14], [[0, 0, 0], [0.01, 0, 0]], np.eye(3) * 5.43).validate_geometry()
    with pytest.raises(InvalidRecordError, match="empty structure"):
        Crystal(np.zeros(0, int), np.zeros((0, 3)), np.eye(3)).validate_geometry()
    with pytest.raises(InvalidRecordError, match="volume"):
        Crystal([1], [[0, 0, 0]], np.diag([1.0, 1.0, 1e-3])).validate_geometry()
    # an atom closer than 0.5 A to its own periodic image
    with pytest.raises(InvalidRecordError, match="on top of each other"):
        Crystal([1], [[0, 0, 0]], np.diag([0.4, 5.0, 5.0])).validate_geometry()
