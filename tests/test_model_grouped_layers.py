"""The dense per-size evaluation of the CSP layers (crystals with n atoms as one (B_n, n, n, H) edge tensor) is the
same function as the edge-list evaluation: outputs and gradients agree for mixed atom counts."""

from __future__ import annotations

import torch

from dosmatgen.model.backbone import run_csp_layers
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.model.edges import fully_connected_edges, size_groups


def mixed_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    num_atoms = torch.tensor([3, 1, 5, 3, 8, 5, 2])
    n = int(num_atoms.sum())
    lattice = torch.eye(3) * 4 + 0.3 * torch.randn(len(num_atoms), 3, 3, generator=g)
    return num_atoms, torch.rand(n, 3, generator=g), lattice, g


def test_size_groups_cover_every_edge_once():
    num_atoms = torch.tensor([3, 1, 5, 3, 2])
    groups = size_groups(num_atoms)
    assert [gr.size for gr in groups] == [1, 2, 3, 5]
    assert groups[2].crystals.tolist() == [0, 3] and groups[2].atoms.tolist() == [[0, 1, 2], [9, 10, 11]]
    grid = {(int(a), int(b)) for gr in groups for row in gr.atoms for a in row for b in row}
    edge_index, _ = fully_connected_edges(num_atoms)
    assert grid == {(int(i), int(j)) for i, j in edge_index.T} and len(grid) == edge_index.shape[1]


def test_grouped_layers_match_the_edge_list_layers_values_and_gradients():
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny(hidden_dim=48, num_layers=3))
    num_atoms, frac, lattice, g = mixed_batch()
    h0 = torch.randn(frac.shape[0], 48, generator=g)
    outs, grads = [], []
    for grouped in (False, True):
        h = h0.clone().requires_grad_(True)
        x = frac.clone().requires_grad_(True)
        out = run_csp_layers(model.layers, model.fourier, h, x, lattice, num_atoms, grouped=grouped)
        w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        params = [p for p in model.layers.parameters()]
        grads.append(torch.autograd.grad((out * w).sum(), [h, x, *params]))
        outs.append(out.detach())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_denoiser_uses_the_grouped_path_and_equals_the_edge_list_one(monkeypatch):
    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny()).eval()
    num_atoms, frac, lattice, g = mixed_batch(3)
    batch = torch.repeat_interleave(torch.arange(len(num_atoms)), num_atoms)
    types = torch.randn(frac.shape[0], 100, generator=g)
    t = torch.randint(1, 1000, (len(num_atoms),), generator=g)
    with torch.no_grad():
        fast = model(types, frac, lattice, t, batch, None, num_atoms)
        calls = []
        import dosmatgen.model.cspnet as cspnet

        original = cspnet.run_csp_layers

        def edge_list(*args, **kwargs):
            calls.append(kwargs.get("grouped", True))
            return original(*args, grouped=False)

        monkeypatch.setattr(cspnet, "run_csp_layers", edge_list)
        slow = model(types, frac, lattice, t, batch, None, num_atoms)
    assert calls == [True]
    for f in ("coord_score", "lattice_eps", "type_eps"):
        torch.testing.assert_close(getattr(fast, f), getattr(slow, f), rtol=1e-5, atol=1e-5)


def test_a_cfg_doubled_batch_computes_the_geometry_features_once_and_gives_the_same_result():
    from dosmatgen.diffusion.state import CrystalState
    from dosmatgen.sampling.guidance import doubled_state

    torch.manual_seed(0)
    model = CSPNetDenoiser(DenoiserConfig.tiny(hidden_dim=48))
    num_atoms, frac, lattice, g = mixed_batch(5)
    batch = torch.repeat_interleave(torch.arange(len(num_atoms)), num_atoms)
    state = doubled_state(CrystalState(torch.randn(frac.shape[0], 100, generator=g), frac, lattice, batch, num_atoms))
    h = torch.randn(state.frac_coords.shape[0], 48, generator=g)
    rows = []
    hook = model.fourier.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    with torch.no_grad():
        grouped = run_csp_layers(model.layers, model.fourier, h, state.frac_coords, state.lattice, state.num_atoms)
        rows_grouped = sum(rows)
        rows.clear()
        edges = run_csp_layers(model.layers, model.fourier, h, state.frac_coords, state.lattice, state.num_atoms, grouped=False)
    hook.remove()
    assert rows_grouped * 2 == sum(rows) == int((state.num_atoms**2).sum())  # one copy's edges, not both
    torch.testing.assert_close(grouped, edges, rtol=1e-5, atol=1e-5)
    # a batch whose second half differs is not folded
    moved = state.frac_coords.clone()
    moved[-1] += 0.1
    rows.clear()
    hook = model.fourier.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    with torch.no_grad():
        run_csp_layers(model.layers, model.fourier, h, moved, state.lattice, state.num_atoms)
    hook.remove()
    assert sum(rows) > rows_grouped
