"""CHGNet backend (the default): pretrained CHGNet 0.3.0 weights shipped inside the ``chgnet`` wheel, offline.

Batched evaluation: the B crystal graphs are built one by one (CHGNet's ``CrystalGraphConverter``,
neighbour search in C), assembled into one ``BatchedGraph`` with the bond and angle bases expanded in
one vectorised call for the whole batch (CHGNet's ``from_graphs`` loops over graphs), passed through the
network ONCE (by default with its first gated-MLP layers factored over the gathers,
:mod:`dosmatgen.relax.chgnet_factored`); forces and stress then come from ONE reverse-mode pass,
``d(sum_b E_b)/d(positions, strains)``, without ``create_graph``.
(CHGNet's own ``predict_graph`` takes two backward passes with ``create_graph=True``, which is meant for
training and costs several times more at inference; the values are the same to float32 precision, which
``tests/test_relax_mlff.py`` checks.)

Units: CHGNet predicts energy per atom (``is_intensive``); we return totals in eV. Its stress comes out
as ``(1/V) dE/d(strain)`` in eV/Å^3 here (CHGNet multiplies by 160.2177 to report GPa; ASE's
``CHGNetCalculator`` divides that back), i.e. ASE's sign convention.
"""

from __future__ import annotations

import contextlib
import io
from typing import Sequence

import numpy as np
import torch

from dosmatgen.relax.chgnet_factored import FactoredCHGNet
from dosmatgen.relax.chgnet_graph import graph_index_arrays
from dosmatgen.errors import InvalidRecordError
from dosmatgen.relax.mlff import MLFF, MLFFOutput

#: how the atom and bond graph index arrays are built (``CHGNetMLFF(graph_code=...)``)
GRAPH_CODES = ("numpy", "chgnet")
#: how the energy is computed from the batched graph (``CHGNetMLFF(forward_code=...)``)
FORWARD_CODES = ("factored", "chgnet")


class CHGNetMLFF(MLFF):
    """Pretrained CHGNet evaluated in batches.

    Args:
        model: an already loaded ``chgnet.model.CHGNet`` (default: ``CHGNet.load()``, the 0.3.0 weights).
        device: torch device, default ``"cpu"``.
        max_atoms_per_call: split a batch into several forward passes above this many atoms, to bound
            memory (one call of :meth:`compute` still covers the whole batch).
        graph_code: ``"numpy"`` (default, :mod:`dosmatgen.relax.chgnet_graph`) or ``"chgnet"`` (CHGNet's own graph
            objects; the same arrays, 5x slower: for checks and before/after benchmarks).
        forward_code: ``"factored"`` (default, :mod:`dosmatgen.relax.chgnet_factored`: CHGNet's network with its
            first gated-MLP layers applied per atom and bond before the gathers, equal to float32 rounding; the
            local screen's relax stage 1.47-1.51x faster on 2 CPU cores, not measured on a GPU) or ``"chgnet"`` (CHGNet's
            own ``_compute``).
    """

    name = "chgnet"

    def __init__(self, model=None, device: str = "cpu", max_atoms_per_call: int = 4096, graph_code: str = "numpy",
                 forward_code: str = "factored") -> None:
        import chgnet
        from chgnet.model import CHGNet

        self.check_options({"device": device, "max_atoms_per_call": max_atoms_per_call, "graph_code": graph_code,
                            "forward_code": forward_code})
        self.graph_code = graph_code
        self.forward_code = forward_code

        if model is None:
            with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints a banner on load
                model = CHGNet.load(verbose=False, use_device=device)
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.max_atoms_per_call = int(max_atoms_per_call)
        self.version = f"chgnet-{chgnet.__version__}/model-{model.version or 'unknown'}"
        n_elements = int(self.model.atom_embedding.embedding.num_embeddings)
        self.supported_elements = frozenset(range(1, n_elements + 1))
        self.graph_converter = self.model.graph_converter
        self._energy = FactoredCHGNet(self.model).compute if forward_code == "factored" else self.model._compute

    @classmethod
    def check_options(cls, options) -> None:
        """``graph_code`` one of :data:`GRAPH_CODES`, ``forward_code`` one of :data:`FORWARD_CODES`,
        ``max_atoms_per_call`` a positive integer, ``device`` a torch device string."""
        if "graph_code" in options and options["graph_code"] not in GRAPH_CODES:
            raise InvalidRecordError(f"chgnet graph_code must be one of {', '.join(GRAPH_CODES)}, got {options['graph_code']!r}")
        if "forward_code" in options and options["forward_code"] not in FORWARD_CODES:
            raise InvalidRecordError(
                f"chgnet forward_code must be one of {', '.join(FORWARD_CODES)}, got {options['forward_code']!r}")
        if "max_atoms_per_call" in options:
            value = options["max_atoms_per_call"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRecordError(f"chgnet max_atoms_per_call must be a positive integer, got {value!r}")
        if "device" in options:
            try:
                torch.device(options["device"])
            except (RuntimeError, TypeError) as exc:
                raise InvalidRecordError(f"chgnet device {options['device']!r} is not a torch device: {exc}") from None

    # ---------------------------------------------------------------- graphs
    def graph_from_arrays(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray):
        """CHGNet ``CrystalGraph`` straight from arrays (Z (n,), Cartesian Å (n, 3), lattice rows (3, 3)).

        Same graph as ``CrystalGraphConverter.forward(Structure)`` (same neighbour search, pymatgen's
        ``find_points_in_spheres``; the atom and bond graph index arrays from
        :func:`~dosmatgen.relax.chgnet_graph.graph_index_arrays`, equal to CHGNet's own graph code's) without building
        a pymatgen ``Structure`` and its composition string, which cost as much as the graph itself.
        """
        from chgnet.graph.crystalgraph import CrystalGraph
        from chgnet.model.model import TORCH_DTYPE
        from pymatgen.optimization.neighbors import find_points_in_spheres

        conv = self.graph_converter
        lattice = np.ascontiguousarray(cell, dtype=float)
        cart = np.ascontiguousarray(positions, dtype=float)
        frac = np.linalg.solve(lattice.T, cart.T).T
        n_atoms = len(cart)
        center, neighbor, image, distance = find_points_in_spheres(
            cart, cart, r=float(conv.atom_graph_cutoff), pbc=np.ones(3, dtype=np.int64), lattice=lattice, tol=1e-8
        )
        keep = ~((center == neighbor) & (distance <= 1e-8))
        center, neighbor, image, distance = center[keep], neighbor[keep], image[keep], distance[keep]
        isolated = n_atoms - len(set(center.tolist()))
        if isolated:
            raise ValueError(f"{isolated} isolated atom(s) with no neighbour within {conv.atom_graph_cutoff} A")
        arrays = (graph_index_arrays(n_atoms, center, neighbor, image, distance, float(conv.bond_graph_cutoff))
                  if self.graph_code == "numpy" else None)
        if arrays is None:  # no unique reverse edge somewhere: CHGNet's own graph code decides (or raises)
            graph = conv.create_graph(n_atoms, center, neighbor, image, distance)
            atom_graph, directed2undirected = graph.adjacency_list()
            bond_graph, undirected2directed = graph.line_graph_adjacency_list(cutoff=conv.bond_graph_cutoff)
        else:
            atom_graph, directed2undirected = arrays.atom_graph, arrays.directed2undirected
            undirected2directed = arrays.undirected2directed
            # CHGNet stores an empty angle list as a 1-D empty tensor
            bond_graph = arrays.bond_graph if len(arrays.bond_graph) else np.zeros(0, dtype=np.int64)
        return CrystalGraph(
            atomic_number=torch.tensor(np.asarray(numbers), dtype=torch.int32),
            atom_frac_coord=torch.tensor(frac, dtype=TORCH_DTYPE),
            atom_graph=torch.as_tensor(np.asarray(atom_graph, dtype=np.int32)).reshape(-1, 2),
            neighbor_image=torch.tensor(image, dtype=TORCH_DTYPE),
            directed2undirected=torch.as_tensor(np.asarray(directed2undirected, dtype=np.int32)),
            undirected2directed=torch.as_tensor(np.asarray(undirected2directed, dtype=np.int32)),
            bond_graph=torch.as_tensor(np.asarray(bond_graph, dtype=np.int32)),
            lattice=torch.tensor(lattice, dtype=TORCH_DTYPE),
            graph_id=None,
            mp_id=None,
            composition="",
            atom_graph_cutoff=conv.atom_graph_cutoff,
            bond_graph_cutoff=conv.bond_graph_cutoff,
        )

    def _graphs(self, numbers, positions, cells):
        """CrystalGraph per structure, or the error message of the ones that cannot be built."""
        graphs, errors = [], {}
        for i, (z, pos, cell) in enumerate(zip(numbers, positions, cells, strict=True)):
            try:
                graphs.append(self.graph_from_arrays(z, pos, cell).to(self.device))
            except Exception as exc:  # noqa: BLE001 - one bad structure must not lose the batch
                errors[i] = f"CHGNet graph construction failed: {type(exc).__name__}: {exc}"
                graphs.append(None)
        return graphs, errors

    # --------------------------------------------------------------- forward
    def _assemble(self, graphs):
        """One ``BatchedGraph`` for all graphs, with the bond and angle bases computed in ONE call each.

        Equivalent to CHGNet's ``BatchedGraph.from_graphs(..., compute_stress=True)`` (which loops over
        the graphs and expands bases graph by graph), vectorised over the batch. Returns the batched graph,
        the Cartesian positions (N, 3) and strains (B, 3, 3) to differentiate against, and volumes (B,).
        """
        from chgnet.model.model import BatchedGraph

        model = self.model
        dev = self.device
        n_atoms = torch.tensor([g.atomic_number.shape[0] for g in graphs], device=dev)
        n_directed = torch.tensor([g.atom_graph.shape[0] for g in graphs], device=dev)
        n_undirected = torch.tensor([g.undirected2directed.shape[0] for g in graphs], device=dev)
        n_angles = torch.tensor([g.bond_graph.shape[0] if g.bond_graph.dim() == 2 else 0 for g in graphs], device=dev)
        b = len(graphs)
        atom_off = torch.cumsum(n_atoms, 0) - n_atoms
        dir_off = torch.cumsum(n_directed, 0) - n_directed
        und_off = torch.cumsum(n_undirected, 0) - n_undirected
        atom_owner = torch.repeat_interleave(torch.arange(b, device=dev), n_atoms)
        bond_owner = torch.repeat_interleave(torch.arange(b, device=dev), n_directed)
        und_owner = torch.repeat_interleave(torch.arange(b, device=dev), n_undirected)
        angle_owner = torch.repeat_interleave(torch.arange(b, device=dev), n_angles)

        lattices = torch.stack([g.lattice.detach() for g in graphs])
        strains = torch.zeros_like(lattices, requires_grad=True)
        eye = torch.eye(3, dtype=lattices.dtype, device=dev)
        strained = lattices @ (eye + strains)
        frac = torch.cat([g.atom_frac_coord.detach() for g in graphs])
        positions = torch.einsum("nj,njk->nk", frac, strained[atom_owner])

        atom_graph = torch.cat([g.atom_graph.reshape(-1, 2) for g in graphs]).long() + atom_off[bond_owner, None]
        image = torch.cat([g.neighbor_image for g in graphs]).to(lattices.dtype)
        shift = torch.einsum("ej,ejk->ek", image, strained[bond_owner])  # Cartesian image shift per bond
        und2dir = torch.cat([g.undirected2directed for g in graphs]).long() + dir_off[und_owner]
        dir2und = torch.cat([g.directed2undirected for g in graphs]).long() + und_off[bond_owner]
        bond_basis_ag, bond_basis_bg, bond_vectors = model.bond_basis_expansion(
            center=positions[atom_graph[:, 0]],
            neighbor=positions[atom_graph[:, 1]],
            undirected2directed=und2dir,
            image=shift,
            lattice=eye,
        )
        if int(n_angles.sum()) > 0:
            bg = torch.cat([g.bond_graph for g in graphs if g.bond_graph.dim() == 2 and g.bond_graph.shape[0]]).long()
            angle_bases = model.angle_basis_expansion(
                bond_vectors[bg[:, 2] + dir_off[angle_owner]], bond_vectors[bg[:, 4] + dir_off[angle_owner]]
            )
            batched_bond_graph = torch.stack(
                [bg[:, 0] + atom_off[angle_owner], bg[:, 1] + und_off[angle_owner], bg[:, 3] + und_off[angle_owner]], dim=1
            ).to(graphs[0].bond_graph.dtype)
        else:
            angle_bases, batched_bond_graph = torch.tensor([], device=dev), torch.tensor([], device=dev)
        volumes = torch.linalg.det(strained.detach()).abs()
        batched = BatchedGraph(
            atomic_numbers=torch.cat([g.atomic_number for g in graphs]),
            bond_bases_ag=bond_basis_ag,
            bond_bases_bg=bond_basis_bg,
            angle_bases=angle_bases,
            batched_atom_graph=atom_graph.to(graphs[0].atom_graph.dtype),
            batched_bond_graph=batched_bond_graph,
            atom_owners=atom_owner.to(torch.int32),
            directed2undirected=dir2und.to(graphs[0].directed2undirected.dtype),
            atom_positions=[positions],
            strains=[strains],
            volumes=volumes,
        )
        return batched, positions, strains, volumes

    def _forward(self, graphs) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        model = self.model
        batched, positions, strains, volumes = self._assemble(graphs)
        prediction = self._energy(batched)  # energy only; forces and stress below in one reverse pass
        n_atoms = prediction["atoms_per_graph"].to(prediction["e"].dtype)
        energy = prediction["e"] * n_atoms if model.is_intensive else prediction["e"]
        grad_pos, grad_strain = torch.autograd.grad(energy.sum(), [positions, strains])
        if model.composition_model is not None:
            comp = model.composition_model(graphs)
            energy = energy + (comp * n_atoms if model.is_intensive else comp)
        sizes = [int(g.atomic_number.shape[0]) for g in graphs]
        forces = [-f.to(torch.float64).cpu().numpy() for f in torch.split(grad_pos.detach(), sizes)]
        stress = (grad_strain.detach() / volumes[:, None, None]).to(torch.float64).cpu().numpy()
        return energy.detach().to(torch.float64).cpu().numpy(), forces, stress

    def compute(self, numbers: Sequence[np.ndarray], positions: Sequence[np.ndarray], cells: Sequence[np.ndarray]) -> MLFFOutput:
        n_atoms = [len(z) for z in numbers]
        graphs, errors = self._graphs(numbers, positions, cells)
        good = [i for i, g in enumerate(graphs) if g is not None]
        energy = np.full(len(graphs), np.nan)
        forces = [np.full((n, 3), np.nan) for n in n_atoms]
        stress = np.full((len(graphs), 3, 3), np.nan)
        # chunks bounded by max_atoms_per_call (normally one chunk = one forward pass)
        chunks, current, count = [], [], 0
        for i in good:
            if current and count + n_atoms[i] > self.max_atoms_per_call:
                chunks.append(current)
                current, count = [], 0
            current.append(i)
            count += n_atoms[i]
        if current:
            chunks.append(current)
        for chunk in chunks:
            e, f, s = self._forward([graphs[i] for i in chunk])
            for k, i in enumerate(chunk):
                energy[i], forces[i], stress[i] = e[k], f[k], s[k]
        return MLFFOutput(energy, forces, stress, errors)
