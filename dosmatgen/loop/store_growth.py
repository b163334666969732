"""The loop's growing dataset: the base store plus every finished DFT record of the loop, with provenance.

Rules (tested in tests/test_loop.py):

* New records are featurized exactly as ``dosmatgen data build`` does (same smoothing, grids, float16 storage);
  their DOS-derived properties are computed the same way.
* The scalers stay those of the base store, so a fine-tuned model sees the same feature scaling as the model it
  starts from (refitting would shift every input and target a little each round).
* Splits: a new record joins ``train`` unless it is a StructureMatcher twin (:data:`TWIN_MATCHER`) of a base
  ``val`` or ``test`` structure; then it takes that split, so nothing the loop trains on is a copy of a structure
  the loop's test report is computed on. The base store's splits never change.
* Each new record's metadata carries its provenance (loop round, role, engine, engine settings, run and row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data.arrays import DatasetArrays
from dosmatgen.data.schema import SPLIT_CODES
from dosmatgen.data.split import TWIN_MATCHER, _composition_key
from dosmatgen.data.store import DatasetStore, write_store
from dosmatgen.dos.record import DOSRecord
from dosmatgen.errors import InvalidRecordError, StoreError


@dataclass
class GrowthSummary:
    path: Path
    base_structures: int
    added: int
    split_of_added: dict[str, int] = field(default_factory=dict)
    twins: list[dict[str, Any]] = field(default_factory=list)


class TwinFinder:
    """StructureMatcher twins of a crystal among a fixed set of structures (compared within one reduced
    composition only, so a lookup costs a few matcher calls)."""

    def __init__(self, crystals: Sequence[Crystal], labels: Sequence[Any]) -> None:
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self.matcher = StructureMatcher(**TWIN_MATCHER)
        self.groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(crystals):
            self.groups.setdefault(_composition_key(c.atomic_numbers), []).append(i)
        self.crystals, self.labels = list(crystals), list(labels)
        self._pmg: dict[int, Any] = {}

    def twin(self, crystal: Crystal) -> int | None:
        """Index of the first structure that matches ``crystal``, or None."""
        members = self.groups.get(_composition_key(crystal.atomic_numbers), [])
        if not members:
            return None
        s = crystal.to_pymatgen()
        for i in members:
            if i not in self._pmg:
                self._pmg[i] = self.crystals[i].to_pymatgen()
            if self.matcher.fit(s, self._pmg[i]):
                return i
        return None


def store_crystals(store: DatasetStore) -> list[Crystal]:
    data = store.to_memory()
    return [data.crystal(i) for i in range(data.num_structures)]


def featurize_records(records: Sequence[DOSRecord], sigma_ev: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Site (n_atoms, 400) and total (256,) features of each record, as the dataset builder makes them."""
    from dosmatgen.data.build import BuildOptions, _features

    options = BuildOptions(sigma_ev=sigma_ev)
    site, total = [], []
    for r in records:
        try:
            s, t = _features(r.validate(check_geometry=True), options)
        except InvalidRecordError as err:
            raise err.located(record=r.id) from None
        site.append(s)
        total.append(t)
    return site, total


def grow_store(base: str | Path, records: Sequence[DOSRecord], provenance: Sequence[dict[str, Any]],
               out: str | Path, *, overwrite: bool = False) -> GrowthSummary:
    """Write ``out`` = the base store + ``records`` (each with its ``provenance`` dict in the metadata)."""
    from dosmatgen.dos.properties import derived_properties_batch

    if len(records) != len(provenance):
        raise ValueError(f"{len(records)} records but {len(provenance)} provenance entries")
    b = DatasetStore.open(base)
    if not b.has_dos:
        raise StoreError(f"{b.path}: the loop's base store must hold DOS features")
    data = b.to_memory()
    known = set(data.ids)
    dup = [r.id for r in records if r.id in known]
    if dup or len({r.id for r in records}) != len(records):
        raise StoreError(f"record ids already in the store or repeated: {sorted(set(dup))[:5] or 'repeated ids'}")
    sigma = float(b.info.get("featurizer", {}).get("site", {}).get("sigma_ev", 0.1))
    site, total = featurize_records(records, sigma)

    held_out = [i for i in range(data.num_structures) if data.split[i] != SPLIT_CODES["train"]]
    finder = TwinFinder([data.crystal(i) for i in held_out], held_out)
    names = {code: name for name, code in SPLIT_CODES.items()}
    new_split, twins = [], []
    for r in records:
        j = finder.twin(r.crystal)
        if j is None:
            new_split.append(SPLIT_CODES["train"])
            continue
        base_index = held_out[j]
        new_split.append(int(data.split[base_index]))
        twins.append({"id": r.id, "twin": data.ids[base_index], "split": names[int(data.split[base_index])]})

    n_new = len(records)
    total16 = np.stack(total).astype(np.float16) if n_new else np.zeros((0, data.total_dos.shape[1]), np.float16)
    new_props = derived_properties_batch(total16.astype(np.float32)) if n_new else {k: np.zeros(0, np.float32) for k in data.properties}
    metadata = [json.dumps({**r.crystal.metadata, **r.metadata, "loop": p}, default=str, sort_keys=True)
                for r, p in zip(records, provenance)]
    counts = np.array([r.crystal.num_atoms for r in records], dtype=np.int64)
    grown = DatasetArrays(
        ids=data.ids + [r.id for r in records],
        sources=data.sources + [r.source for r in records],
        offsets=np.concatenate([data.offsets, data.offsets[-1] + np.cumsum(counts)]),
        atomic_numbers=np.concatenate([data.atomic_numbers] + [r.crystal.atomic_numbers.astype(np.int16) for r in records]),
        frac_coords=np.concatenate([data.frac_coords] + [r.crystal.frac_coords for r in records]),
        lattice=np.concatenate([data.lattice] + [r.crystal.lattice[None] for r in records]),
        energy=np.concatenate([data.energy, [np.nan if r.energy is None else float(r.energy) for r in records]]),
        efermi=np.concatenate([data.efermi, [float(r.efermi) for r in records]]),
        split=np.concatenate([data.split, np.asarray(new_split, dtype=np.int8)]),
        metadata=data.metadata + metadata,
        site_dos=np.concatenate([data.site_dos.astype(np.float16)] + [s.astype(np.float16) for s in site]),
        total_dos=np.concatenate([data.total_dos.astype(np.float16), total16]),
        properties={k: np.concatenate([v, new_props[k]]) for k, v in data.properties.items()},
    )
    managed = {"kind", "schema_version", "has_dos", "counts", "property_names"}
    attrs = {k: v for k, v in b.info.items() if k not in managed}
    attrs["loop_growth"] = {"base": str(b.path), "base_structures": data.num_structures, "added": n_new,
                            "split_rule": "train unless a StructureMatcher twin of a base val/test structure",
                            "scalers": "the base store's"}
    scalers = {which: sc.to_arrays() for which, sc in b.scalers.items()}
    path = write_store(out, grown, attrs=attrs, scalers=scalers, overwrite=overwrite)
    return GrowthSummary(path, data.num_structures, n_new,
                         {names[c]: int(sum(1 for s in new_split if s == c)) for c in names}, twins)
