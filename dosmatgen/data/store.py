"""The dataset store: one Zarr v3 group per dataset (layout in :mod:`dosmatgen.data.schema`).

Writing: :func:`write_store` writes a complete store into a temporary directory next to the target and
renames it into place, so a reader never sees half a store and an interrupted write leaves the target
untouched. One process writes a store; parallel builds stage their parts first (:mod:`dosmatgen.data.build`).

Reading: :meth:`DatasetStore.open` checks the kind, schema version and array shapes and raises
:class:`~dosmatgen.errors.StoreError` for a missing, corrupt or foreign store.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.data import schema as S
from dosmatgen.data.arrays import DatasetArrays
from dosmatgen.dos.grid import SITE_GRID, TOTAL_GRID, EnergyGrid
from dosmatgen.errors import StoreError

#: Structures per chunk of the per-structure arrays, atoms per chunk of the per-atom arrays.
STRUCTURES_PER_CHUNK = 1024
ATOMS_PER_CHUNK = 4096
#: Chunks per shard (one shard file holds this many chunks).
CHUNKS_PER_SHARD = 8


# ============================================================================ writing
def _chunking(shape: tuple[int, ...], rows_per_chunk: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rows = max(1, min(rows_per_chunk, shape[0] if shape[0] else 1))
    chunks = (rows, *shape[1:])
    shard_rows = rows * CHUNKS_PER_SHARD
    return chunks, (shard_rows, *shape[1:])


def _put(group, name: str, data: np.ndarray, rows_per_chunk: int) -> None:
    data = np.ascontiguousarray(data)
    chunks, shards = _chunking(data.shape, rows_per_chunk)
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks, shards=shards)
    if data.size:
        arr[...] = data


def _put_strings(group, name: str, values: list[str]) -> None:
    arr = group.create_array(name, shape=(len(values),), dtype=str, chunks=(max(1, min(STRUCTURES_PER_CHUNK, len(values) or 1)),))
    if values:
        arr[:] = np.array(values, dtype=object).astype(str)


def write_store(
    path: str | Path,
    data: DatasetArrays,
    *,
    attrs: Mapping[str, Any],
    scalers: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` as a complete store at ``path`` (atomically: temp dir + rename).

    ``attrs`` go into the ``dosmatgen`` group attribute next to kind, schema version, ``has_dos`` and counts.
    ``scalers`` maps "site"/"total" to the arrays of a fitted scaler. Site and total features are stored as
    float16. Raises StoreError when ``path`` exists and ``overwrite`` is false.
    """
    import zarr

    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        n = data.num_structures
        _put(group, S.OFFSETS, data.offsets.astype(np.int64), STRUCTURES_PER_CHUNK)
        _put(group, S.NUM_ATOMS, data.num_atoms.astype(np.int32), STRUCTURES_PER_CHUNK)
        _put(group, S.LATTICE, np.asarray(data.lattice, dtype=np.float64).reshape(n, 3, 3), STRUCTURES_PER_CHUNK)
        _put(group, S.ENERGY, np.asarray(data.energy, dtype=np.float64), STRUCTURES_PER_CHUNK)
        _put(group, S.EFERMI, np.asarray(data.efermi, dtype=np.float64), STRUCTURES_PER_CHUNK)
        _put(group, S.SPLIT, np.asarray(data.split, dtype=np.int8), STRUCTURES_PER_CHUNK)
        _put_strings(group, S.ID, list(data.ids))
        _put_strings(group, S.SOURCE, list(data.sources))
        _put_strings(group, S.METADATA, list(data.metadata))
        _put(group, S.ATOMIC_NUMBERS, np.asarray(data.atomic_numbers, dtype=np.int16), ATOMS_PER_CHUNK)
        _put(group, S.FRAC_COORDS, np.asarray(data.frac_coords, dtype=np.float64).reshape(-1, 3), ATOMS_PER_CHUNK)
        if data.has_dos:
            _put(group, S.SITE_DOS, np.asarray(data.site_dos).astype(np.float16), ATOMS_PER_CHUNK)
            _put(group, S.TOTAL_DOS, np.asarray(data.total_dos).astype(np.float16), STRUCTURES_PER_CHUNK)
            props = group.create_group(S.PROPERTIES_GROUP)
            for name, values in data.properties.items():
                _put(props, name, np.asarray(values, dtype=np.float32), STRUCTURES_PER_CHUNK)
        if scalers:
            sgroup = group.create_group(S.SCALERS_GROUP)
            for which, arrays in scalers.items():
                g = sgroup.create_group(which)
                for key, value in arrays.items():
                    value = np.asarray(value)
                    g.create_array(key, shape=value.shape, dtype=value.dtype, chunks=value.shape)[...] = value
        counts = {
            "structures": n,
            "sites": data.num_sites,
            "splits": {name: int(np.sum(data.split == code)) for name, code in S.SPLIT_CODES.items()},
        }
        group.attrs[S.ATTRS_KEY] = {
            **dict(attrs),
            "kind": S.STORE_KIND,
            "schema_version": S.SCHEMA_VERSION,
            "has_dos": data.has_dos,
            "counts": counts,
            "property_names": sorted(data.properties) if data.has_dos else [],
        }
        _replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished directory ``src`` to ``dst``, replacing an old ``dst`` with two renames."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f"{dst.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


# ============================================================================ reading
class DatasetStore:
    """Read access to a dataset store. Open with :meth:`open`.

    Small per-structure arrays (offsets, ids, splits, lattices) are read once and cached; per-atom arrays are
    read by slice. :meth:`to_memory` reads everything at once for training.
    """

    def __init__(self, path: Path, group, info: dict[str, Any]):
        self.path = path
        self._group = group
        self.info = info

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | Path) -> "DatasetStore":
        import zarr

        path = Path(path)
        if not path.exists():
            raise StoreError(f"no dataset store at {path} (no such file or directory)")
        if not path.is_dir():
            raise StoreError(f"{path} is not a dataset store (not a directory)")
        try:
            group = zarr.open_group(str(path), mode="r", zarr_format=3)
        except Exception as exc:  # noqa: BLE001 - any failure to parse the metadata means a corrupt store
            raise StoreError(f"{path} is not a readable Zarr v3 group ({type(exc).__name__}: {exc})") from None
        info = group.attrs.get(S.ATTRS_KEY)
        if not isinstance(info, dict) or info.get("kind") != S.STORE_KIND:
            raise StoreError(f"{path} is a Zarr group but not a dosmatgen dataset store (no '{S.ATTRS_KEY}' attributes)")
        version = info.get("schema_version")
        if version != S.SCHEMA_VERSION:
            raise StoreError(
                f"{path} has dataset schema version {version!r}; this dosmatgen reads version {S.SCHEMA_VERSION} "
                "(rebuild it with `dosmatgen data build`)"
            )
        store = cls(path, group, info)
        store._check_layout()
        return store

    def _array(self, name: str):
        try:
            return self._group[name]
        except KeyError:
            raise StoreError(f"{self.path} is corrupt: array '{name}' is missing") from None

    def _read(self, name: str, sel: Any = Ellipsis) -> np.ndarray:
        arr = self._array(name)
        try:
            return np.asarray(arr[sel])
        except Exception as exc:  # noqa: BLE001 - a broken chunk surfaces as a codec/OS error
            raise StoreError(f"{self.path} is corrupt: cannot read '{name}' ({type(exc).__name__}: {exc})") from None

    def _check_layout(self) -> None:
        names = list(S.REQUIRED_ARRAYS) + (list(S.DOS_ARRAYS) if self.has_dos else [])
        shapes = {name: tuple(self._array(name).shape) for name in names}
        offsets = self.offsets
        n = offsets.shape[0] - 1
        if n < 0 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise StoreError(f"{self.path} is corrupt: offsets are not a non-decreasing prefix sum starting at 0")
        m = int(offsets[-1])
        expected = {
            S.NUM_ATOMS: (n,), S.LATTICE: (n, 3, 3), S.ID: (n,), S.SOURCE: (n,), S.METADATA: (n,),
            S.ENERGY: (n,), S.EFERMI: (n,), S.SPLIT: (n,), S.ATOMIC_NUMBERS: (m,), S.FRAC_COORDS: (m, 3),
        }
        if self.has_dos:
            expected[S.SITE_DOS] = (m, self.site_grid.n)
            expected[S.TOTAL_DOS] = (n, self.total_grid.n)
        bad = [f"{k} {shapes[k]} != {v}" for k, v in expected.items() if shapes[k] != v]
        if bad:
            raise StoreError(f"{self.path} is corrupt: {'; '.join(bad)}")

    # ------------------------------------------------------------- metadata
    @property
    def has_dos(self) -> bool:
        return bool(self.info.get("has_dos", False))

    @property
    def site_grid(self) -> EnergyGrid:
        return EnergyGrid.from_dict(self.info.get("grids", {}).get("site", SITE_GRID.to_dict()))

    @property
    def total_grid(self) -> EnergyGrid:
        return EnergyGrid.from_dict(self.info.get("grids", {}).get("total", TOTAL_GRID.to_dict()))

    @cached_property
    def offsets(self) -> np.ndarray:
        return self._read(S.OFFSETS).astype(np.int64)

    @property
    def num_structures(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def num_sites(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def num_atoms(self) -> np.ndarray:
        return np.diff(self.offsets).astype(np.int32)

    @cached_property
    def ids(self) -> list[str]:
        return [str(s) for s in self._read(S.ID)]

    @cached_property
    def sources(self) -> list[str]:
        return [str(s) for s in self._read(S.SOURCE)]

    @cached_property
    def split(self) -> np.ndarray:
        return self._read(S.SPLIT).astype(np.int8)

    @cached_property
    def _lattice(self) -> np.ndarray:
        return self._read(S.LATTICE)

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the structures of ``split`` ("train", "val", "test" or "all")."""
        if split == "all":
            return np.arange(self.num_structures)
        if split not in S.SPLIT_CODES:
            raise ValueError(f"unknown split {split!r}; expected one of {list(S.SPLIT_NAMES)} or 'all'")
        return np.flatnonzero(self.split == S.SPLIT_CODES[split])

    def split_sizes(self) -> dict[str, int]:
        return {name: int(np.sum(self.split == code)) for name, code in S.SPLIT_CODES.items()}

    def metadata(self, i: int) -> dict[str, Any]:
        """The record metadata of structure ``i`` (entries common to all structures are kept once, in the
        ``common_metadata`` attribute, and merged back here)."""
        own = json.loads(str(self._read(S.METADATA, self._check_index(i))))
        return {**self.info.get("common_metadata", {}), **own}

    # ------------------------------------------------------------- per item
    def _check_index(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.num_structures:
            raise IndexError(f"structure index {i} out of range for {self.num_structures} structures")
        return i

    def _atoms(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def crystal(self, i: int) -> Crystal:
        i = self._check_index(i)
        s = self._atoms(i)
        z = self._read(S.ATOMIC_NUMBERS, s).astype(np.int64)
        x = self._read(S.FRAC_COORDS, s)
        return Crystal(z, x, self._lattice[i], {"id": self.ids[i], "source": self.sources[i]})

    def _require_dos(self) -> None:
        if not self.has_dos:
            raise StoreError(f"{self.path} holds structures only (has_dos = false): it has no DOS features")

    def site_features(self, i: int, scaled: bool = False) -> np.ndarray:
        """(n_atoms, 400) float32 site features of structure ``i`` (raw, or standardised with the train scaler)."""
        self._require_dos()
        i = self._check_index(i)
        x = self._read(S.SITE_DOS, self._atoms(i)).astype(np.float32)
        return self.scalers["site"].transform(x).astype(np.float32) if scaled else x

    def total_features(self, i: int, scaled: bool = False) -> np.ndarray:
        """(256,) float32 per-atom total-DOS features of structure ``i`` (raw, or standardised)."""
        self._require_dos()
        i = self._check_index(i)
        x = self._read(S.TOTAL_DOS, i).astype(np.float32)
        return self.scalers["total"].transform(x[None])[0].astype(np.float32) if scaled else x

    # ------------------------------------------------------------ whole set
    @property
    def property_names(self) -> list[str]:
        return list(self.info.get("property_names", []))

    @cached_property
    def properties(self) -> dict[str, np.ndarray]:
        """DOS-derived properties, name -> (N,) float32 (empty for structure-only stores)."""
        return {name: self._read(f"{S.PROPERTIES_GROUP}/{name}").astype(np.float32) for name in self.property_names}

    @cached_property
    def scalers(self) -> dict[str, Any]:
        """{"site": PerBinStandardScaler, "total": PerBinStandardScaler}, fitted on the train split."""
        self._require_dos()
        from dosmatgen.dos.scaler import PerBinStandardScaler

        out = {}
        for which in (S.SITE_SCALER, S.TOTAL_SCALER):
            prefix = f"{S.SCALERS_GROUP}/{which}"
            try:
                group = self._group[prefix]
            except KeyError:
                raise StoreError(f"{self.path} is corrupt: scaler '{prefix}' is missing") from None
            arrays = {key: self._read(f"{prefix}/{key}") for key in group.array_keys()}
            try:
                out[which] = PerBinStandardScaler.from_arrays(arrays)
            except (KeyError, ValueError) as exc:
                raise StoreError(f"{self.path} is corrupt: scaler '{prefix}' cannot be loaded ({exc})") from None
        return out

    def to_memory(self) -> DatasetArrays:
        """Every array of the store as numpy (site/total features as float32, raw)."""
        has = self.has_dos
        return DatasetArrays(
            ids=self.ids,
            sources=self.sources,
            offsets=self.offsets,
            atomic_numbers=self._read(S.ATOMIC_NUMBERS).astype(np.int16),
            frac_coords=self._read(S.FRAC_COORDS),
            lattice=self._lattice,
            energy=self._read(S.ENERGY),
            efermi=self._read(S.EFERMI),
            split=self.split,
            metadata=[str(s) for s in self._read(S.METADATA)],
            site_dos=self._read(S.SITE_DOS).astype(np.float32) if has else None,
            total_dos=self._read(S.TOTAL_DOS).astype(np.float32) if has else None,
            properties=dict(self.properties) if has else {},
        )

    def __len__(self) -> int:
        return self.num_structures

    def __repr__(self) -> str:
        return f"DatasetStore({str(self.path)!r}, structures={self.num_structures}, sites={self.num_sites}, has_dos={self.has_dos})"
