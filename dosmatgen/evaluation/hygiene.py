"""Hidden-split hygiene: which split a checkpoint was trained (and selected) on, and refusing to evaluate there.

The evaluation never trains or tunes anything. What it must avoid is *reporting* numbers on structures a model
has seen. The denoiser checkpoint records its training split in one of two places, tried in order:

1. the checkpoint's own ``training`` section, when it holds ``train_split`` / ``val_split`` / ``store`` (or a
   ``data`` mapping with those keys);
2. the ``config.yaml`` that ``dosmatgen train`` writes next to its checkpoints (section ``data``).

When neither says, the trainer's default (``train``, selected on ``val``) is assumed and the report says so.
The forward surrogate records its splits in its checkpoint info; a surrogate trained on the evaluated split
would make the DOS-match numbers optimistic, so it is refused the same way, and so is a split the classifier-
guidance regressor recorded as its training split (``data`` in its checkpoint; an older regressor checkpoint
without it is assumed to share the denoiser's splits, with a note in the report). Splits are a pure function of a
structure id (:mod:`dosmatgen.data.split`), so the same split name means the same structures in any store
built from the same records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from dosmatgen.errors import InvalidRecordError

#: What ``dosmatgen train`` uses when its config names no splits (``DataConfig`` defaults).
DEFAULT_TRAIN_SPLIT = "train"
DEFAULT_VAL_SPLIT = "val"


class SplitHygieneError(InvalidRecordError):
    """Evaluating on a split a model was trained on (refused unless forced)."""


@dataclass(frozen=True)
class TrainingSplits:
    """Where a model was trained: ``train_split``, ``val_split`` (checkpoint selection), ``store``; ``source`` says
    where this was read (or that it was assumed)."""

    train_split: str | None
    val_split: str | None
    store: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _from_mapping(d: Mapping[str, Any]) -> tuple[str | None, str | None, str | None] | None:
    data = d.get("data") if isinstance(d.get("data"), Mapping) else d
    if not any(k in data for k in ("train_split", "val_split", "store")):
        return None
    return data.get("train_split"), data.get("val_split"), data.get("store")


def denoiser_training_splits(checkpoint_path: str | Path, training_section: Mapping[str, Any] | None) -> TrainingSplits:
    """The training splits of a denoiser checkpoint (see the module docstring for where they are looked up)."""
    found = _from_mapping(training_section or {})
    if found is not None:
        return TrainingSplits(*found, source="checkpoint")
    config = Path(checkpoint_path).parent / "config.yaml"
    if config.is_file():
        try:
            raw = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError:
            raw = {}
        found = _from_mapping(raw.get("data") or {}) if isinstance(raw, dict) else None
        if found is not None:
            train, val, store = found
            return TrainingSplits(train or DEFAULT_TRAIN_SPLIT, val, store, source=f"{config}")
    return TrainingSplits(DEFAULT_TRAIN_SPLIT, DEFAULT_VAL_SPLIT, None,
                          source="not recorded; assumed the trainer's defaults (train, selected on val)")


def recorded_training_splits(record: Mapping[str, Any], source: str) -> TrainingSplits:
    """The training splits recorded in a checkpoint's mapping (``train_split``, ``val_split``, ``store``, at the top
    or under ``data``): the surrogate's ``info``, the regressor's ``data``."""
    found = _from_mapping(record)
    if found is None:
        return TrainingSplits(DEFAULT_TRAIN_SPLIT, DEFAULT_VAL_SPLIT, None, source="not recorded; assumed train/val")
    return TrainingSplits(*found, source=source)


def surrogate_training_splits(info: Mapping[str, Any]) -> TrainingSplits:
    """The training splits recorded in a surrogate checkpoint's ``info``."""
    return recorded_training_splits(info, "surrogate checkpoint info")


@dataclass
class HygieneReport:
    """The evaluated split, each model's training splits, whether the check was forced, and notes for the report."""

    split: str
    models: dict[str, TrainingSplits]
    forced: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "forced": self.forced, "models": {k: v.to_dict() for k, v in self.models.items()},
                "notes": list(self.notes)}


def check_split(split: str, models: Mapping[str, TrainingSplits], *, force: bool = False) -> HygieneReport:
    """Refuse (SplitHygieneError) when ``split`` is "all" or a model's training split, unless ``force``.

    A model's validation split is allowed (it was only used to pick the checkpoint) but noted.
    """
    report = HygieneReport(split=split, models=dict(models), forced=bool(force))
    clashes = []
    for name, splits in models.items():
        if split == "all" or split == splits.train_split:
            clashes.append(f"the {name} was trained on split {splits.train_split!r} ({splits.source})")
        elif split == splits.val_split:
            report.notes.append(f"the {name} used split {split!r} for checkpoint selection, so it is not fully held out")
    if clashes:
        what = f"evaluating on split {split!r}" + (" (it includes the training structures)" if split == "all" else "")
        if not force:
            raise SplitHygieneError(f"{what} is refused: {'; '.join(clashes)}. Use --split test, or --force-split to do it anyway")
        report.notes.extend(f"FORCED: {c}; the numbers are NOT held-out results" for c in clashes)
    return report
