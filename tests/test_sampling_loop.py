"""The one sampler loop: fixed types and window masks at every step, masked sites, determinism, template starts,
atom-count specifications."""

from __future__ import annotations

import pytest
import torch

from dosmatgen.diffusion.process import DiffusionConfig, JointDiffusion
from dosmatgen.diffusion.state import StateNoise
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import InvalidRecordError
from dosmatgen.model.config import DenoiserConfig
from dosmatgen.model.cspnet import CSPNetDenoiser
from dosmatgen.sampling import (
    ClassifierFreeGuidance, FixedTypes, NoGuidance, NumAtomsSpec, PredictorCorrectorSampler, prior_start,
    site_condition, template_start, window_mask,
)
from test_sampling_cfg import CallSpy

T = 15


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    return CSPNetDenoiser(DenoiserConfig.tiny()).eval(), JointDiffusion(DiffusionConfig(num_steps=T))


def test_fixed_types_hold_at_every_step_for_every_crystal(setup):
    model, diffusion = setup
    num_atoms = torch.tensor([4, 2, 6, 3])
    gen = torch.Generator().manual_seed(1)
    fixed = FixedTypes.parse(["0:Co", "1:O"])
    cond = site_condition(torch.randn(400, generator=gen), num_atoms, (0,))
    out = PredictorCorrectorSampler(model, diffusion, step_lr=1e-4).run(
        prior_start(diffusion, num_atoms, gen), cond, ClassifierFreeGuidance(1.0), [fixed], gen, record_trajectory=True
    )
    traj = out.trajectory
    assert traj.steps == list(range(T, -1, -1))
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), num_atoms.cumsum(0)])
    for k in range(len(traj)):
        z = traj.atomic_numbers(k)
        assert z[ptr[:-1]].tolist() == [27] * 4  # site 0 of every crystal is Co
        assert z[ptr[:-1] + 1].tolist() == [8] * 4  # site 1 of every crystal is O
        assert torch.equal(traj.atom_types[k][ptr[:-1]], torch.nn.functional.one_hot(torch.tensor([26] * 4), 100).float())
    # the free sites are not all forced to those elements
    free = torch.cat([torch.arange(a + 2, b) for a, b in zip(ptr[:-1].tolist(), ptr[1:].tolist())])
    assert set(traj.atomic_numbers(len(traj) - 1)[free].tolist()) - {27, 8}


def test_window_and_site_mask_hold_at_every_step(setup):
    model, diffusion = setup
    spy = CallSpy(model)
    num_atoms = torch.tensor([3, 4])
    gen = torch.Generator().manual_seed(2)
    window = window_mask(SITE_GRID, -2.0, 2.0)
    cond = site_condition(torch.rand(400, generator=gen), num_atoms, (1,), window)
    assert cond.mask.tolist() == [0, 1, 0, 0, 1, 0, 0]
    PredictorCorrectorSampler(spy, diffusion, step_lr=1e-4).run(prior_start(diffusion, num_atoms, gen), cond, ClassifierFreeGuidance(1.0), generator=gen)
    assert len(spy.calls) == 2 * T
    n = 7
    for _, c in spy.calls:
        assert torch.equal(c.window[:n], window.expand(n, -1)) and torch.equal(c.window[n:], window.expand(n, -1))
        assert c.mask[:n].tolist() == cond.mask.tolist() and c.mask[n:].sum() == 0
        # the conditional rows carry the target unchanged (the model itself zeroes what lies outside W:
        # test_model_conditioning.py::test_window_hides_the_rest_of_the_spectrum)
        assert torch.equal(c.dos[:n], cond.dos)
    # [-2, 2] eV on 400 points over [-10, 10] eV (step 20/399): bins 160..239, i.e. 80 bins
    assert window.tolist() == [0.0] * 160 + [1.0] * 80 + [0.0] * 160


def test_same_seed_same_samples_and_other_seed_differs(setup):
    model, diffusion = setup
    num_atoms = torch.tensor([3, 5])

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        cond = site_condition(torch.ones(400), num_atoms, None)
        return PredictorCorrectorSampler(model, diffusion, step_lr=1e-4).run(prior_start(diffusion, num_atoms, gen), cond, ClassifierFreeGuidance(1.0), generator=gen).state

    a, b, c = run(7), run(7), run(8)
    for f in ("atom_types", "frac_coords", "lattice"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.frac_coords, c.frac_coords)


def test_template_start_is_the_forward_process_at_t_start(setup):
    model, diffusion = setup
    from dosmatgen.batch import collate_crystals
    from dosmatgen.crystal import Crystal
    import numpy as np

    crystal = Crystal(np.array([11, 17]), np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), np.eye(3) * 4.0)
    clean = diffusion.clean_state(collate_crystals([crystal, crystal]))
    start = template_start(diffusion, clean, 6, torch.Generator().manual_seed(3))
    expected = diffusion.q_sample(clean, 6, StateNoise.randn_like(clean, torch.Generator().manual_seed(3)))
    assert start.t_start == 6
    torch.testing.assert_close(start.state.lattice, expected.lattice)
    out = PredictorCorrectorSampler(model, diffusion, step_lr=0).run(start, None, NoGuidance(), record_trajectory=True)
    assert out.trajectory.steps == [6, 5, 4, 3, 2, 1, 0] and out.model_calls == 6
    with pytest.raises(InvalidRecordError):
        template_start(diffusion, clean, T + 1, None)
    full = template_start(diffusion, clean, T, torch.Generator().manual_seed(3))
    assert full.t_start == T and full.state.num_atoms.tolist() == [2, 2]


def test_num_atoms_specs():
    assert NumAtomsSpec.parse("4-8").choices == (4, 5, 6, 7, 8)
    assert NumAtomsSpec.parse("4,6").choices == (4, 6)
    assert NumAtomsSpec.parse(None).choices is None
    draws = NumAtomsSpec.parse("4,6").draw(200, None, torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {4, 6}
    hist = [0, 0, 10, 0, 30]
    from_hist = NumAtomsSpec(None).draw(400, hist, torch.Generator().manual_seed(0))
    assert set(from_hist.tolist()) == {2, 4} and 0.6 < float((from_hist == 4).float().mean()) < 0.9
    assert torch.equal(from_hist, NumAtomsSpec(None).draw(400, hist, torch.Generator().manual_seed(0)))
    for bad in ("0", "-2", "3-1", "x"):
        with pytest.raises(InvalidRecordError):
            NumAtomsSpec.parse(bad).check(8)
    with pytest.raises(InvalidRecordError, match="above the largest"):
        NumAtomsSpec.parse("4-9").check(8)
    with pytest.raises(InvalidRecordError, match="no atom-count distribution"):
        NumAtomsSpec(None).draw(3, [], None)


def test_fixed_type_parsing_errors():
    assert FixedTypes.parse(["0:Ni", "3:O"]) == FixedTypes((0, 3), (28, 8))
    for bad, msg in ((["0:Xx"], "unknown element"), (["0:Md"], "outside the model's vocabulary"), (["Ni"], "SITE:ELEMENT"),
                     (["0:Ni", "0:Co"], "fixed twice")):
        with pytest.raises(InvalidRecordError, match=msg):
            FixedTypes.parse(bad)
    with pytest.raises(InvalidRecordError, match="beyond the atom count"):
        FixedTypes.parse(["4:Ni"]).check([4, 6])
