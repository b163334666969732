"""The README's Python example runs as written, so it cannot rot."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_readme_has_one_python_example():
    assert len(python_blocks(README.read_text(encoding="utf-8"))) == 1


@pytest.mark.slow  # samples 4 crystals with the shipped 1000-step model
def test_readme_python_example_runs_and_prints_one_line_per_crystal():
    (code,) = python_blocks(README.read_text(encoding="utf-8"))
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    result = namespace["result"]
    lines = out.getvalue().splitlines()
    assert len(result.crystals) == 4
    valid = [c for c in result.crystals if c is not None]
    assert len(lines) == len(valid) > 0
    for crystal, line in zip(valid, lines):
        assert crystal.num_atoms == 4
        formula, volume, unit = line.split()
        assert formula == crystal.to_pymatgen().composition.reduced_formula and unit == "Å^3" and float(volume) > 0
