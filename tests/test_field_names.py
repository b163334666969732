"""Library errors name the request/config field; the CLI shows the flag instead (issue 18 part 3): a config or
Python user never reads "--t-start", a CLI user never reads "t_start"."""

from __future__ import annotations

import pytest

from dosmatgen.cli.main import main
from dosmatgen.errors import CheckpointError, InvalidRecordError, field_error
from dosmatgen.sampling.request import SamplingRequest, prepare

CKPT = "bundled:dosmatgen-small"


@pytest.mark.parametrize("kwargs, library, cli_args, cli", [
    ({"t_start": 5}, "t_start below T needs template", ["--t-start", "5"], "--t-start below T needs --template"),
    ({"fix_types": ["0Ni"]}, "fix_types '0Ni': expected SITE:ELEMENT", ["--fix-type", "0Ni"], "--fix-type '0Ni': expected SITE:ELEMENT"),
    ({"step_lr": -1.0}, "step_lr must be >= 0", ["--step-lr", "-1"], "--step-lr must be >= 0"),
    ({"num_atoms": "x"}, "num_atoms 'x': expected a count", ["--num-atoms", "x"], "--num-atoms 'x': expected a count"),
])
def test_sampling_errors_name_the_field_in_the_library_and_the_flag_in_the_cli(tmp_path, capsys, kwargs, library, cli_args, cli):
    with pytest.raises(InvalidRecordError) as err:
        prepare(SamplingRequest(checkpoint=CKPT, n=1, **kwargs))
    assert library in str(err.value) and "--" not in str(err.value)
    assert main(["sample", "--checkpoint", CKPT, "--n", "1", "--out", str(tmp_path / "o"), *cli_args]) == 2
    assert cli in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_screen_sampler_reports_config_field_names(tmp_path):
    from dosmatgen.screen.library_stages import load_diffusion_sampler

    with pytest.raises(InvalidRecordError, match=r"^step_lr must be >= 0, got -1.0$"):
        load_diffusion_sampler(CKPT, step_lr=-1.0)


def test_with_names_keeps_the_class_and_location():
    err = field_error(InvalidRecordError, "{window} needs {target}", file="req.yaml")
    assert str(err) == "req.yaml: window needs target"
    assert err.with_names({"window": "--window", "target": "--target"}) == "req.yaml: --window needs --target"
    ck = field_error(CheckpointError, "x.pt: use {guidance} classifier")
    assert isinstance(ck, CheckpointError) and ck.with_names({"guidance": "--guidance"}) == "x.pt: use --guidance classifier"
    assert InvalidRecordError("plain {not_a_template}").with_names({"not_a_template": "--x"}) == "plain {not_a_template}"
