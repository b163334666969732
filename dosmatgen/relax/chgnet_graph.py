"""CHGNet's crystal-graph index arrays built with numpy, equal element for element to CHGNet's own.

CHGNet (``chgnet.graph``) turns a neighbour list into its atom graph and bond (line) graph by creating one Python
object per directed edge and walking them: 1.97 ms per crystal of the relaxation benchmark set (4-8 atoms),
against 0.37 ms here, which made the batched relaxation 1.10x faster (BENCHMARKS.md, third run). :func:`graph_index_arrays` computes the same four arrays from the neighbour list with array
operations, in the same order, following CHGNet's rules (``Graph.add_edge``, ``Graph.adjacency_list``,
``Graph.line_graph_adjacency_list``, chgnet 0.4):

* directed edges are the neighbour list's pairs in its order;
* a directed edge i→j (image m) shares its undirected edge with its reverse j→i (image −m, the same distance within
  ``dist_tol``); the undirected edges are numbered in the order of their first directed edge;
* for every undirected edge of length ≤ the bond cutoff, in order, and for each of its two ends (the first
  directed edge's centre, then its neighbour), one angle row per other directed edge of that centre shorter than
  the cutoff, in the order CHGNet stores a node's edges: grouped by neighbour, neighbours in order of first
  appearance, each group in neighbour-list order.

Where a directed edge has no unique reverse partner (CHGNet would then fail or pair by its first-come rule), the
function returns None and the caller uses CHGNet's own code, so the result is always CHGNet's.
``tests/test_chgnet_graph.py`` checks equality with CHGNet on relaxation inputs, rattled cells and one-atom cells
whose only neighbours are their own images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GraphIndexArrays:
    """CHGNet's graph index arrays for one crystal (int64)."""

    #: (E, 2) centre and neighbour atom of each directed edge
    atom_graph: np.ndarray
    #: (E,) the undirected edge of each directed edge
    directed2undirected: np.ndarray
    #: (U,) the first directed edge of each undirected edge
    undirected2directed: np.ndarray
    #: (A, 5) angle rows: centre atom, undirected and directed edge of bond 1, undirected and directed edge of bond 2
    bond_graph: np.ndarray


def graph_index_arrays(n_atoms: int, center: np.ndarray, neighbor: np.ndarray, image: np.ndarray,
                       distance: np.ndarray, bond_cutoff: float, dist_tol: float = 1e-6) -> GraphIndexArrays | None:
    """The atom graph and bond graph of one crystal from its neighbour list (see the module docstring); None when a
    directed edge has no unique reverse partner."""
    center = np.asarray(center, dtype=np.int64)
    neighbor = np.asarray(neighbor, dtype=np.int64)
    image = np.asarray(image, dtype=np.int64).reshape(-1, 3)
    distance = np.asarray(distance, dtype=np.float64)
    n_edges = len(center)
    edges = np.arange(n_edges)
    if n_edges == 0:
        return GraphIndexArrays(np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                                np.zeros((0, 5), np.int64))

    # --- reverse partner of every directed edge: the edge with key (j, i, -m)
    span = int(np.abs(image).max())
    base = 2 * span + 1

    def key(c: np.ndarray, n: np.ndarray, m: np.ndarray) -> np.ndarray:
        shifted = m + span
        return (((c * n_atoms + n) * base + shifted[:, 0]) * base + shifted[:, 1]) * base + shifted[:, 2]

    forward = key(center, neighbor, image)
    order = np.argsort(forward, kind="stable")
    sorted_keys = forward[order]
    if n_edges > 1 and np.any(sorted_keys[1:] == sorted_keys[:-1]):
        return None  # the same directed edge twice
    reverse = key(neighbor, center, -image)
    slot = np.searchsorted(sorted_keys, reverse)
    if np.any(slot >= n_edges) or np.any(sorted_keys[np.minimum(slot, n_edges - 1)] != reverse):
        return None  # an edge without its reverse
    partner = order[slot]
    if np.any(partner == edges) or np.any(np.abs(distance[partner] - distance) >= dist_tol):
        return None

    # --- undirected edges, numbered by their first directed edge
    first = edges < partner
    first_edges = edges[first]
    und_of_first = np.full(n_edges, -1, dtype=np.int64)
    und_of_first[first_edges] = np.arange(len(first_edges))
    directed2undirected = np.where(first, und_of_first, und_of_first[partner])
    undirected2directed = first_edges
    second_edges = partner[first_edges]

    # --- each centre's edges in CHGNet's node order: by neighbour (first appearance), then neighbour-list order
    pair = center * n_atoms + neighbor
    _, first_index, inverse = np.unique(pair, return_index=True, return_inverse=True)
    group_first = first_index[inverse.reshape(-1)]
    node_order = np.lexsort((edges, group_first, center))
    short = node_order[distance[node_order] < bond_cutoff]
    count = np.bincount(center[short], minlength=n_atoms)
    start = np.cumsum(count) - count

    # --- angle rows: for each short-enough undirected edge, its two ends in turn
    in_graph = distance[first_edges] <= bond_cutoff
    u_ids = np.flatnonzero(in_graph)
    half_edge = np.stack([first_edges[u_ids], second_edges[u_ids]], axis=1).reshape(-1)
    half_und = np.repeat(u_ids, 2)
    half_center = center[half_edge]
    per_half = count[half_center]
    total = int(per_half.sum())
    if total == 0:
        bond_graph = np.zeros((0, 5), dtype=np.int64)
    else:
        owner = np.repeat(np.arange(len(half_edge)), per_half)
        within = np.arange(total) - np.repeat(np.cumsum(per_half) - per_half, per_half)
        other = short[start[half_center[owner]] + within]
        keep = other != half_edge[owner]
        owner, other = owner[keep], other[keep]
        bond_graph = np.stack([half_center[owner], half_und[owner], half_edge[owner], directed2undirected[other], other],
                              axis=1)
    return GraphIndexArrays(np.stack([center, neighbor], axis=1), directed2undirected, undirected2directed, bond_graph)
