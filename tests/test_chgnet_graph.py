"""The numpy CHGNet graph (dosmatgen.relax.chgnet_graph) equals CHGNet's own graph code element for element, and
the CHGNet backend gives bit-identical energies, forces and stresses with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("chgnet")

from chgnet.graph.converter import CrystalGraphConverter  # noqa: E402
from pymatgen.optimization.neighbors import find_points_in_spheres  # noqa: E402

from dosmatgen.io.structure_files import read_structures  # noqa: E402
from dosmatgen.relax.chgnet_graph import graph_index_arrays  # noqa: E402

RELAX_SET = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "relax64.extxyz"
CONVERTER = CrystalGraphConverter(atom_graph_cutoff=6, bond_graph_cutoff=3, algorithm="fast")


def _neighbours(cart: np.ndarray, lattice: np.ndarray, cutoff: float = 6.0):
    c, n, im, d = find_points_in_spheres(cart, cart, r=cutoff, pbc=np.ones(3, dtype=np.int64), lattice=lattice, tol=1e-8)
    keep = ~((c == n) & (d <= 1e-8))
    return c[keep], n[keep], im[keep], d[keep]


def _assert_same_as_chgnet(n_atoms: int, cart: np.ndarray, lattice: np.ndarray) -> int:
    c, n, im, d = _neighbours(cart, lattice)
    graph = CONVERTER.create_graph(n_atoms, c, n, im, d)
    atom_graph, d2u = graph.adjacency_list()
    bond_graph, u2d = graph.line_graph_adjacency_list(cutoff=3.0)
    mine = graph_index_arrays(n_atoms, c, n, im, d, 3.0)
    assert mine is not None
    assert np.array_equal(np.asarray(atom_graph).reshape(-1, 2), mine.atom_graph)
    assert np.array_equal(np.asarray(d2u), mine.directed2undirected)
    assert np.array_equal(np.asarray(u2d), mine.undirected2directed)
    assert np.array_equal(np.asarray(bond_graph).reshape(-1, 5), mine.bond_graph)
    return len(bond_graph)


def test_equal_to_chgnet_on_relaxation_inputs_and_random_cells():
    _, crystals = read_structures(RELAX_SET)
    angles = sum(_assert_same_as_chgnet(c.num_atoms, np.asarray(c.cart_coords), np.asarray(c.lattice)) for c in crystals)
    rng = np.random.default_rng(0)
    for _ in range(60):  # skewed cells of 1-8 atoms, dense to sparse; one-atom cells see only their own images
        n = int(rng.integers(1, 9))
        lattice = np.diag(rng.uniform(0.7, 1.3, 3)) * rng.uniform(2.0, 6.0) + rng.normal(0, 0.3, (3, 3))
        angles += _assert_same_as_chgnet(n, rng.random((n, 3)) @ lattice, lattice)
    assert angles > 10_000  # the comparison covered real angle lists


def test_no_unique_reverse_edge_leaves_it_to_chgnet():
    c, n, im, d = _neighbours(np.array([[0.0, 0, 0], [1.2, 1.1, 0.9]]), 3.0 * np.eye(3))
    assert graph_index_arrays(2, c, n, im, d, 3.0) is not None
    assert graph_index_arrays(2, c[1:], n[1:], im[1:], d[1:], 3.0) is None  # an edge without its reverse
    assert graph_index_arrays(2, np.r_[c, c[:1]], np.r_[n, n[:1]], np.r_[im, im[:1]], np.r_[d, d[:1]], 3.0) is None
    d2 = d.copy()
    d2[0] += 1e-3  # the reverse is farther than CHGNet's tolerance
    assert graph_index_arrays(2, c, n, im, d2, 3.0) is None


def test_chgnet_backend_is_bit_identical_with_either_graph_code():
    from dosmatgen.errors import InvalidRecordError
    from dosmatgen.relax.mlff import get_mlff

    _, crystals = read_structures(RELAX_SET)
    crystals = crystals[:12]
    args = ([np.asarray(c.atomic_numbers) for c in crystals], [np.asarray(c.cart_coords) for c in crystals],
            [np.asarray(c.lattice) for c in crystals])
    mlff = get_mlff("chgnet")
    assert mlff.graph_code == "numpy"  # the default
    ours = mlff.compute(*args)
    theirs = get_mlff("chgnet", graph_code="chgnet").compute(*args)  # relax.options.mlff_options.graph_code
    assert np.array_equal(ours.energy, theirs.energy) and np.array_equal(ours.stress, theirs.stress)
    assert all(np.array_equal(a, b) for a, b in zip(ours.forces, theirs.forces))
    with pytest.raises(InvalidRecordError, match="graph_code must be one of numpy, chgnet, got 'fast'"):
        get_mlff("chgnet", graph_code="fast")
