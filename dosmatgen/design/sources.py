"""Where the conditioning total DOS of a design run come from: the :class:`DosSource` protocol and its three kinds.

* ``dossampler`` (:class:`DosSamplerSource`): :func:`dosmatgen.dos_sampler.generate_dos`, the DOS generator of
  issue 16 (imported lazily, so everything else works without it);
* ``dataset`` (:class:`DatasetSource`): the total DOS of dataset crystals whose properties meet the targets,
  drawn with replacement (the dataset-DOS baseline of the paper's Table 1);
* ``like`` (:class:`LikeSource`): one reference crystal's total DOS, repeated (crystal-to-crystal translation;
  :mod:`dosmatgen.design.like` finds it).

Every source returns a :class:`DesignDos` with rows that meet the targets (or the reference row); a source
that cannot deliver one raises a :class:`~dosmatgen.errors.DosmatgenError` before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dosmatgen.dos.grid import TOTAL_GRID
from dosmatgen.errors import DosmatgenError, InvalidRecordError
from dosmatgen.dos.property_targets import PropertyTargets, meets_targets, target_properties

SOURCES = ("dossampler", "dataset", "like")


@dataclass
class DesignDos:
    """Conditioning total DOS: ``dos`` (n, 256) states/eV/atom on TOTAL_GRID, ``origin`` one label per row
    (a dataset id, ``dossampler``, or the reference), and what the source reports (``info``)."""

    dos: np.ndarray
    origin: list[str]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dos = np.asarray(self.dos, dtype=np.float64)
        if self.dos.ndim != 2 or self.dos.shape[1] != TOTAL_GRID.n:
            raise InvalidRecordError(f"a design DOS source returned shape {self.dos.shape}, expected (n, {TOTAL_GRID.n})")
        if len(self.origin) != self.dos.shape[0]:
            raise InvalidRecordError(f"a design DOS source returned {len(self.origin)} labels for {self.dos.shape[0]} rows")

    @property
    def energies(self) -> np.ndarray:
        return TOTAL_GRID.energies

    def properties(self) -> dict[str, np.ndarray]:
        return target_properties(self.dos)


class DosSource(Protocol):
    name: str

    def __call__(self, targets: PropertyTargets | None, n: int, seed: int) -> DesignDos: ...


class DosSamplerSource:
    """The DOS generator (``dosmatgen.dos_sampler``); keeps only the accepted rows (those meeting the targets)."""

    name = "dossampler"

    def __init__(self, checkpoint: str = "bundled:dossampler-small", device: str = "cpu",
                 guidance_scale: float | None = None, max_rounds: int = 10, shape_guidance_scale: float | None = None) -> None:
        self.checkpoint, self.device, self.guidance_scale, self.max_rounds = checkpoint, device, guidance_scale, int(max_rounds)
        self.shape_guidance_scale = shape_guidance_scale

    def __call__(self, targets: PropertyTargets | None, n: int, seed: int) -> DesignDos:
        if targets is None:
            raise DosmatgenError("--source dossampler needs property targets (--band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric)")
        try:
            from dosmatgen.dos_sampler import generate_dos
        except ImportError as exc:
            raise DosmatgenError(f"--source dossampler needs the DOS generator dosmatgen.dos_sampler, which this "
                                 f"installation lacks ({exc}); use --source dataset") from None
        out = generate_dos(targets, int(n), checkpoint=self.checkpoint, seed=int(seed),
                           device=self.device, guidance_scale=self.guidance_scale, max_rounds=self.max_rounds,
                           shape_guidance_scale=self.shape_guidance_scale)
        if not np.allclose(np.asarray(out.energies), TOTAL_GRID.energies, atol=1e-6):
            raise DosmatgenError(f"{self.checkpoint}: the DOS generator's grid is not TOTAL_GRID ({TOTAL_GRID})")
        accepted = np.asarray(out.accepted, dtype=bool)
        if not accepted.any():
            raise DosmatgenError(f"the DOS generator produced no DOS meeting {targets.describe()} in {self.max_rounds} "
                                 f"rounds ({len(accepted)} tried); relax the targets or raise --max-rounds")
        dos = np.asarray(out.dos, dtype=np.float64)[accepted]
        return DesignDos(dos, ["dossampler"] * int(accepted.sum()),
                         {"source": self.name, "checkpoint": self.checkpoint, "generated": int(len(accepted)),
                          "accepted": int(accepted.sum())})


class DatasetSource:
    """Total DOS of dataset crystals (split ``split``) whose DOS meets the targets, ``n`` drawn with replacement."""

    name = "dataset"

    def __init__(self, store: str | None = None, split: str = "train", te_reference: np.ndarray | None = None) -> None:
        from dosmatgen.data.bundled import bundled_dataset_path

        self.store = str(store) if store else str(bundled_dataset_path())
        self.split, self.te_reference = split, te_reference

    def __call__(self, targets: PropertyTargets | None, n: int, seed: int) -> DesignDos:
        from dosmatgen.data.store import DatasetStore

        if targets is None:
            raise DosmatgenError("--source dataset needs property targets (--band-gap, --dos-ef, --n-ef, --tcm, --thermoelectric)")
        store = DatasetStore.open(self.store)
        if not store.has_dos:
            raise InvalidRecordError("the store has no total-DOS features", file=self.store)
        idx = store.split_indices(self.split)
        total = store.to_memory().total_dos[idx].astype(np.float64)
        ok = meets_targets(total, targets, self.te_reference)
        if not ok.any():
            raise DosmatgenError(f"no {self.split}-split crystal of {self.store} has a total DOS meeting "
                                 f"{targets.describe()} (of {idx.size}); relax the targets or use another --source")
        pool = idx[ok]
        pick = np.random.default_rng(int(seed)).choice(pool.size, size=int(n), replace=True)
        ids = store.ids
        return DesignDos(total[ok][pick], [ids[int(pool[k])] for k in pick],
                         {"source": self.name, "store": self.store, "split": self.split, "matching": int(pool.size),
                          "of": int(idx.size)})


class LikeSource:
    """One reference total DOS (:class:`dosmatgen.design.like.ReferenceDOS`), repeated ``n`` times."""

    name = "like"

    def __init__(self, reference) -> None:
        self.reference = reference

    def __call__(self, targets: PropertyTargets | None, n: int, seed: int) -> DesignDos:
        ref = self.reference
        return DesignDos(np.repeat(ref.dos[None], int(n), axis=0), [ref.label] * int(n),
                         {"source": self.name, "reference": ref.label, "how": ref.how, "file": ref.file})
