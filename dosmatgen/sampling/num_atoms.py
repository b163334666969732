"""How many atoms each generated crystal has: an explicit set/range, or draws from the training distribution."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from dosmatgen.errors import InvalidRecordError, field_error


@dataclass(frozen=True)
class NumAtomsSpec:
    """Allowed atom counts. ``choices`` None means "draw from the training histogram".

    Text forms (``parse``): ``"6"`` (one count), ``"4-8"`` (inclusive range), ``"4,6,8"`` (a set), ``"4-6,8"``.
    With explicit choices, each crystal's count is drawn uniformly from ``choices`` with the sampling generator.
    """

    choices: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, text: str | None) -> "NumAtomsSpec":
        if text is None or str(text).strip() in ("", "train", "data"):
            return cls(None)
        values: list[int] = []
        for part in str(text).split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    cut = part.index("-", 1)
                    lo, hi = int(part[:cut]), int(part[cut + 1 :])
                    if hi < lo:
                        raise field_error(InvalidRecordError, f"{{num_atoms}} range {part!r} is empty (upper bound below lower bound)")
                    values.extend(range(lo, hi + 1))
                else:
                    values.append(int(part))
            except ValueError:
                raise field_error(InvalidRecordError, f"{{num_atoms}} {text!r}: expected a count, a range like 4-8 or a list like 4,6") from None
        return cls(tuple(sorted(set(values))))

    def check(self, max_trained: int | None) -> None:
        """InvalidRecordError for a count <= 0 or above the largest count seen in training."""
        if self.choices is None:
            return
        bad = [n for n in self.choices if n <= 0]
        if bad:
            raise InvalidRecordError(f"atom count must be >= 1, got {bad[0]}")
        if max_trained is not None:
            too_big = [n for n in self.choices if n > max_trained]
            if too_big:
                raise InvalidRecordError(
                    f"atom count {too_big[0]} is above the largest crystal the model was trained on ({max_trained} atoms)"
                )

    def draw(self, n: int, histogram: Sequence[int] | None, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) long atom counts. ``histogram[k]`` = number of training crystals with k atoms (index 0 unused)."""
        if self.choices is not None:
            options = torch.tensor(self.choices, dtype=torch.long)
            return options[torch.randint(0, len(options), (n,), generator=generator)]
        probs = histogram_probabilities(histogram)
        return torch.multinomial(probs, n, replacement=True, generator=generator)


def histogram_probabilities(histogram: Sequence[int] | None) -> torch.Tensor:
    """Normalised histogram as float64 probabilities over counts 0..K (count 0 always has probability 0)."""
    if not histogram or sum(int(c) for c in histogram[1:]) <= 0:
        raise field_error(
            InvalidRecordError, "the checkpoint holds no atom-count distribution of its training set; give {num_atoms} explicitly"
        )
    counts = torch.tensor([0] + [max(int(c), 0) for c in histogram[1:]], dtype=torch.float64)
    return counts / counts.sum()


def max_trained_atoms(histogram: Sequence[int] | None) -> int | None:
    """Largest atom count with a non-zero training count (None when the checkpoint has no histogram)."""
    if not histogram:
        return None
    nonzero = [k for k, c in enumerate(histogram) if k > 0 and int(c) > 0]
    return max(nonzero) if nonzero else None
