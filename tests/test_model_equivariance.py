"""Symmetries of the CSPNet denoiser: rotation (L -> L·Rᵀ), atom permutation, periodic translation."""

from __future__ import annotations

import pytest
import torch

from dosmatgen.model import CSPNetDenoiser, DenoiserConfig, DOSCondition


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_orthogonal(gen: torch.Generator, reflect: bool = False) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    if reflect:
        q = q @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    return q


def _inputs(num_atoms=(3, 5, 1), seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = torch.tensor(num_atoms)
    total = int(n.sum())
    batch = torch.repeat_interleave(torch.arange(len(num_atoms)), n)
    return dict(
        atom_types=torch.randn(total, 100, generator=gen, dtype=torch.float64),
        frac_coords=torch.rand(total, 3, generator=gen, dtype=torch.float64),
        lattice=(torch.eye(3, dtype=torch.float64) * 4 + torch.randn(len(num_atoms), 3, 3, generator=gen, dtype=torch.float64)),
        t=torch.randint(1, 1000, (len(num_atoms),), generator=gen),
        batch=batch,
        cond=DOSCondition(torch.randn(total, 400, generator=gen, dtype=torch.float64), torch.ones(total, dtype=torch.float64)),
    )


@pytest.fixture(scope="module")
def model() -> CSPNetDenoiser:
    torch.manual_seed(0)
    return CSPNetDenoiser(DenoiserConfig.tiny()).double().eval()


@pytest.mark.parametrize("reflect", [False, True])
def test_rotation_of_cartesian_frame(model, reflect):
    inp = _inputs()
    rot = _random_orthogonal(torch.Generator().manual_seed(3), reflect)
    out = model(**inp)
    rotated = dict(inp, lattice=inp["lattice"] @ rot.T)
    out_r = model(**rotated)
    torch.testing.assert_close(out_r.coord_score, out.coord_score)
    torch.testing.assert_close(out_r.type_eps, out.type_eps)
    torch.testing.assert_close(out_r.lattice_eps, out.lattice_eps @ rot.T)
    # the rotation really changed the lattice output (the check is not vacuous)
    assert not torch.allclose(out_r.lattice_eps, out.lattice_eps)


def test_permutation_equivariance(model):
    inp = _inputs()
    # permute atoms within each crystal (atoms of a crystal stay contiguous)
    perm = torch.tensor([2, 0, 1, 7, 5, 3, 6, 4, 8])
    permuted = dict(
        inp,
        atom_types=inp["atom_types"][perm],
        frac_coords=inp["frac_coords"][perm],
        batch=inp["batch"][perm],
        cond=DOSCondition(inp["cond"].dos[perm], inp["cond"].mask[perm]),
    )
    assert torch.equal(permuted["batch"], inp["batch"])
    out, out_p = model(**inp), model(**permuted)
    torch.testing.assert_close(out_p.coord_score, out.coord_score[perm])
    torch.testing.assert_close(out_p.type_eps, out.type_eps[perm])
    torch.testing.assert_close(out_p.lattice_eps, out.lattice_eps)


def test_periodic_translation_invariance(model):
    inp = _inputs()
    shift = torch.tensor([0.37, -0.81, 0.55], dtype=torch.float64)
    out = model(**inp)
    # translate every atom of every crystal and wrap back into [0, 1); also add whole lattice vectors to one atom
    moved = torch.remainder(inp["frac_coords"] + shift, 1.0)
    moved[4] += torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    out_t = model(**dict(inp, frac_coords=moved))
    torch.testing.assert_close(out_t.coord_score, out.coord_score)
    torch.testing.assert_close(out_t.type_eps, out.type_eps)
    torch.testing.assert_close(out_t.lattice_eps, out.lattice_eps)


def test_crystals_do_not_talk_to_each_other(model):
    """Batching is exact: a crystal's outputs do not depend on the other crystals of the batch."""
    inp = _inputs(num_atoms=(3, 5, 1))
    out = model(**inp)
    sl = slice(3, 8)
    alone = model(
        atom_types=inp["atom_types"][sl], frac_coords=inp["frac_coords"][sl], lattice=inp["lattice"][1:2],
        t=inp["t"][1:2], batch=torch.zeros(5, dtype=torch.long),
        cond=DOSCondition(inp["cond"].dos[sl], inp["cond"].mask[sl]),
    )
    torch.testing.assert_close(alone.coord_score, out.coord_score[sl])
    torch.testing.assert_close(alone.lattice_eps, out.lattice_eps[1:2])


def test_fully_connected_edges_include_self_pairs():
    from dosmatgen.model.edges import fully_connected_edges

    edge_index, edge_crystal = fully_connected_edges(torch.tensor([2, 1, 3]))
    pairs = set(map(tuple, edge_index.T.tolist()))
    expected = {(i, j) for i in (0, 1) for j in (0, 1)} | {(2, 2)} | {(i, j) for i in (3, 4, 5) for j in (3, 4, 5)}
    assert pairs == expected and edge_index.shape[1] == 4 + 1 + 9
    assert edge_crystal.tolist() == [0] * 4 + [1] + [2] * 9


def test_output_shapes_paper_config():
    cfg = DenoiserConfig.paper()
    assert (cfg.hidden_dim, cfg.num_layers, cfg.num_freqs, cfg.time_dim, cfg.num_classes) == (512, 6, 128, 256, 100)
    m = CSPNetDenoiser(cfg)
    assert m.fourier.out_dim == 768
    n = torch.tensor([2, 3])
    out = m(torch.randn(5, 100), torch.rand(5, 3), torch.randn(2, 3, 3), torch.tensor([1, 1000]),
            torch.repeat_interleave(torch.arange(2), n))
    assert out.coord_score.shape == (5, 3) and out.lattice_eps.shape == (2, 3, 3) and out.type_eps.shape == (5, 100)
