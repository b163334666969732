"""The Zarr v3 run store of a screening run.

Directory layout (``root`` is the run directory)::

    root/store.zarr/                       Zarr v3 group, attrs: schema_version, layout, targets
        targets/<target>/requested_num_atoms   (R,)        int32, R = num_shards * shard_size
        targets/<target>/conditioning          (n_E,)      float64 (optional; the target DOS the sampler sees)
        targets/<target>/sample/num_atoms      (R,)        int32   (0 = no structure)
        targets/<target>/sample/atom_offset    (R,)        int64   first atom row of each candidate (-1 = none)
        targets/<target>/sample/atomic_numbers (R*M,)      int16   Z
        targets/<target>/sample/frac_coords    (R*M, 3)    float64
        targets/<target>/sample/lattice        (R, 3, 3)   float64 Å, rows are lattice vectors
        targets/<target>/sample/seed           (R,)        int64   the shard seed used
        targets/<target>/sample/target_index   (R,)        int32   index of the target in the run
        targets/<target>/relax/frac_coords     (R*M, 3)    float64 relaxed structure (same atoms and order)
        targets/<target>/relax/lattice         (R, 3, 3)   float64
        targets/<target>/relax/energy_unrelaxed (R,)       float64 eV/atom (MLFF, before relaxation)
        targets/<target>/relax/energy_relaxed  (R,)        float64 eV/atom
        targets/<target>/relax/formation_energy (R,)       float64 eV/atom
        targets/<target>/relax/energy_above_hull (R,)      float64 eV/atom (NaN without competing phases; runs
                                                           created before it existed lack the array)
        targets/<target>/relax/steps           (R,)        int32
        targets/<target>/relax/flags           (R,)        uint32  :class:`~dosmatgen.runstore.flags.Flag` bits
        targets/<target>/rank/score            (R,)        float64 lower is better; NaN = not ranked
        targets/<target>/select/row            (K,)        int64   candidate row of the k-th best (-1 = none)
        targets/<target>/select/score          (K,)        float64
        targets/<target>/dft/site_dos          (K, M, C, G) float32 site DOS on the layout's grid (states/eV)
        targets/<target>/dft/energy            (K,)        float64 eV (total energy of the cell)
        targets/<target>/dft/efermi            (K,)        float64 eV
    root/manifest/...  root/failures/...    see :mod:`dosmatgen.runstore.manifest`

Concurrency rules (FACTS §7: writes by different processes into one Zarr shard lose data):

* every array is created up front, by one process, in :meth:`RunStore.create`; nothing is resized later;
* the Zarr shards of candidate arrays are exactly ``shard_size`` rows (atom arrays ``shard_size*max_atoms``),
  so a writer that writes run shard ``i`` writes whole Zarr shards and nothing else;
* per-k DFT arrays are chunked one row per chunk, so each DFT job writes its own chunk files;
* ``select/*`` is written once, by the driver.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.errors import InvalidRecordError, StoreError
from dosmatgen.runstore.layout import RunLayout, TargetPlan, num_shards
from dosmatgen.runstore.manifest import Manifest
from dosmatgen.runstore.seeds import shard_seed

SCHEMA_VERSION = 1
#: Stage names used in the manifest, in pipeline order.
STAGES = ("sample", "relax", "rank", "select", "dft")
STORE_DIRNAME = "store.zarr"


def _zarr():
    import zarr

    return zarr


class RunStore:
    """A screening run on disk. Create it once with :meth:`create`; open it anywhere with :meth:`open`."""

    def __init__(self, root: Path, group: Any, mode: str) -> None:
        self.root = Path(root)
        self._group = group
        self.mode = mode
        attrs = dict(group.attrs)
        self.layout = RunLayout.from_dict(attrs["layout"])
        self.target_ids: list[str] = list(attrs["targets"])
        self.manifest = Manifest(self.root)
        self._targets: dict[str, TargetRun] = {}

    # ------------------------------------------------------------ creation
    @classmethod
    def create(cls, root: str | os.PathLike, layout: RunLayout, targets: Sequence[TargetPlan]) -> "RunStore":
        """Create the store with every array allocated, or open an existing one with the same plan.

        The group is built in a temporary folder and renamed into place, so a crash during creation
        leaves no half-made store. Reopening with a different layout or target plan raises StoreError.
        """
        root = Path(root)
        ids = [t.id for t in targets]
        if not ids:
            raise StoreError("a run needs at least one target")
        if len(set(ids)) != len(ids):
            raise StoreError(f"duplicate target ids in {ids}")
        final = root / STORE_DIRNAME
        if final.exists():
            store = cls.open(root, mode="r+")
            store.check_same_plan(layout, targets)
            return store
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".store.zarr.", dir=root))
        try:
            zarr = _zarr()
            group = zarr.open_group(str(tmp), mode="w")
            for index, plan in enumerate(targets):
                _create_target_arrays(group, layout, plan, index)
            group.attrs.update(
                {
                    "schema_version": SCHEMA_VERSION,
                    "kind": "dosmatgen-run",
                    "layout": layout.to_dict(),
                    "targets": ids,
                    "created": time.time(),
                }
            )
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists():  # another process won the race: use its store
                return cls.open(root, mode="r+")
            raise
        return cls.open(root, mode="r+")

    @classmethod
    def open(cls, root: str | os.PathLike, mode: str = "r+") -> "RunStore":
        """Open an existing run store (``mode`` "r" or "r+"); StoreError if it is missing or corrupt."""
        if mode not in ("r", "r+"):
            raise StoreError(f"run store mode must be 'r' or 'r+', got {mode!r} (mode 'w' would delete the run)")
        root = Path(root)
        path = root / STORE_DIRNAME
        if not (path / "zarr.json").is_file():
            raise StoreError(f"no run store at {root} (missing {path / 'zarr.json'})")
        zarr = _zarr()
        try:
            group = zarr.open_group(str(path), mode=mode)
            attrs = dict(group.attrs)
        except Exception as exc:  # zarr raises several types for unreadable metadata
            raise StoreError(f"corrupt run store at {path}: {exc}") from exc
        if attrs.get("kind") != "dosmatgen-run":
            raise StoreError(f"{path} is not a dosmatgen run store (kind={attrs.get('kind')!r})")
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"run store {path} has schema version {version}, this dosmatgen reads {SCHEMA_VERSION}")
        if "layout" not in attrs or "targets" not in attrs:
            raise StoreError(f"corrupt run store at {path}: attributes 'layout'/'targets' missing")
        return cls(root, group, mode)

    def check_same_plan(self, layout: RunLayout, targets: Sequence[TargetPlan]) -> None:
        have = self.layout.to_dict()
        want = layout.to_dict()
        for key in want:
            if have[key] != want[key]:
                raise StoreError(
                    f"run store {self.root} was created with {key}={have[key]!r}, the config asks for {want[key]!r}; "
                    "use a new run directory"
                )
        if [t.id for t in targets] != self.target_ids:
            raise StoreError(f"run store {self.root} has targets {self.target_ids}, the config asks for {[t.id for t in targets]}")
        for plan in targets:
            stored = self.target(plan.id).requested_num_atoms()
            if not np.array_equal(stored, plan.num_atoms):
                raise StoreError(f"run store {self.root}: target {plan.id!r} was created with a different candidate plan")

    # ------------------------------------------------------------- access
    def target(self, target_id: str) -> "TargetRun":
        if target_id not in self.target_ids:
            raise StoreError(f"run store {self.root} has no target {target_id!r} (targets: {self.target_ids})")
        if target_id not in self._targets:
            self._targets[target_id] = TargetRun(self, self._group[f"targets/{target_id}"], target_id)
        return self._targets[target_id]

    def targets(self) -> list["TargetRun"]:
        return [self.target(t) for t in self.target_ids]

    def __repr__(self) -> str:
        return f"RunStore({self.root}, targets={self.target_ids})"


def _create_target_arrays(group: Any, layout: RunLayout, plan: TargetPlan, index: int) -> None:
    S, M, K = layout.shard_size, layout.max_atoms, layout.top_k
    R = num_shards(plan.n_candidates, S) * S
    c = layout.inner_chunk
    g = group.require_group(f"targets/{plan.id}")
    g.attrs.update({"id": plan.id, "index": index, "n_candidates": plan.n_candidates, "metadata": plan.metadata})

    def per_candidate(name: str, dtype: str, fill: Any, tail: tuple[int, ...] = ()) -> None:
        g.create_array(name, shape=(R, *tail), dtype=dtype, chunks=(c, *tail), shards=(S, *tail), fill_value=fill)

    def per_atom(name: str, dtype: str, fill: Any, tail: tuple[int, ...] = ()) -> None:
        g.create_array(name, shape=(R * M, *tail), dtype=dtype, chunks=(c * M, *tail), shards=(S * M, *tail), fill_value=fill)

    per_candidate("requested_num_atoms", "int32", 0)
    requested = np.zeros(R, dtype=np.int32)
    requested[: plan.n_candidates] = plan.num_atoms
    g["requested_num_atoms"][:] = requested
    if plan.conditioning is not None:
        cond = np.asarray(plan.conditioning, dtype=np.float64)
        if cond.ndim == 2 and cond.shape[0] != plan.n_candidates:
            raise StoreError(f"target {plan.id!r}: per-candidate conditioning has {cond.shape[0]} rows for "
                             f"{plan.n_candidates} candidates")
        g.create_array("conditioning", shape=cond.shape, dtype="float64", chunks=cond.shape, fill_value=np.nan)
        g["conditioning"][...] = cond

    per_candidate("sample/num_atoms", "int32", 0)
    per_candidate("sample/atom_offset", "int64", -1)
    per_atom("sample/atomic_numbers", "int16", 0)
    per_atom("sample/frac_coords", "float64", np.nan, (3,))
    per_candidate("sample/lattice", "float64", np.nan, (3, 3))
    per_candidate("sample/seed", "int64", -1)
    per_candidate("sample/target_index", "int32", -1)

    per_atom("relax/frac_coords", "float64", np.nan, (3,))
    per_candidate("relax/lattice", "float64", np.nan, (3, 3))
    for name in ("energy_unrelaxed", "energy_relaxed", "formation_energy", "energy_above_hull"):
        per_candidate(f"relax/{name}", "float64", np.nan)
    per_candidate("relax/steps", "int32", -1)
    per_candidate("relax/flags", "uint32", 0)

    per_candidate("rank/score", "float64", np.nan)

    g.create_array("select/row", shape=(K,), dtype="int64", chunks=(K,), fill_value=-1)
    g.create_array("select/score", shape=(K,), dtype="float64", chunks=(K,), fill_value=np.nan)

    C, G = len(layout.dos_channels), layout.dos_grid.n
    g.create_array("dft/site_dos", shape=(K, M, C, G), dtype="float32", chunks=(1, M, C, G), fill_value=np.nan)
    for name in ("energy", "efermi"):
        g.create_array(f"dft/{name}", shape=(K,), dtype="float64", chunks=(1,), fill_value=np.nan)


class TargetRun:
    """The arrays of one target of a run, addressed by run shard (candidate rows) or selection slot k."""

    def __init__(self, store: RunStore, group: Any, target_id: str) -> None:
        self.store = store
        self.id = target_id
        self._g = group
        attrs = dict(group.attrs)
        self.index = int(attrs["index"])
        self.n_candidates = int(attrs["n_candidates"])
        self.metadata: dict[str, Any] = dict(attrs.get("metadata", {}))
        self.layout = store.layout
        self.num_shards = num_shards(self.n_candidates, self.layout.shard_size)

    # ------------------------------------------------------------ geometry
    def shard_rows(self, shard: int) -> tuple[int, int]:
        """Candidate rows [start, stop) of ``shard`` that hold real candidates (the padding excluded)."""
        if not 0 <= shard < self.num_shards:
            raise StoreError(f"target {self.id!r} has shards 0..{self.num_shards - 1}, not {shard}")
        S = self.layout.shard_size
        return shard * S, min((shard + 1) * S, self.n_candidates)

    def shard_seed(self, shard: int) -> int:
        self.shard_rows(shard)
        return shard_seed(self.layout.run_seed, self.id, shard)

    def requested_num_atoms(self, shard: int | None = None) -> np.ndarray:
        if shard is None:
            return self._g["requested_num_atoms"][: self.n_candidates]
        a, b = self.shard_rows(shard)
        return self._g["requested_num_atoms"][a:b]

    def conditioning(self) -> np.ndarray | None:
        return self._g["conditioning"][...] if "conditioning" in self._g else None

    def _padded(self, shard: int) -> tuple[int, int, int, int]:
        """(row0, row1, atom0, atom1): the whole Zarr shard region owned by run shard ``shard``."""
        self.shard_rows(shard)
        S, M = self.layout.shard_size, self.layout.max_atoms
        return shard * S, (shard + 1) * S, shard * S * M, (shard + 1) * S * M

    def _check_writable(self) -> None:
        if self.store.mode == "r":
            raise StoreError(f"run store {self.store.root} is open read-only")

    # --------------------------------------------------------------- write
    def write_sampled(self, shard: int, crystals: Sequence[Crystal | None], seed: int) -> None:
        """Write the sampled structures of one whole shard (``None`` = the sampler produced nothing usable)."""
        self._check_writable()
        a, b = self.shard_rows(shard)
        if len(crystals) != b - a:
            raise StoreError(f"target {self.id!r} shard {shard} has {b - a} candidates, got {len(crystals)} structures")
        r0, r1, a0, a1 = self._padded(shard)
        S, M = self.layout.shard_size, self.layout.max_atoms
        num = np.zeros(S, dtype=np.int32)
        offset = np.full(S, -1, dtype=np.int64)
        z = np.zeros(S * M, dtype=np.int16)
        x = np.full((S * M, 3), np.nan)
        lat = np.full((S, 3, 3), np.nan)
        cursor = 0
        for i, crystal in enumerate(crystals):
            if crystal is None:
                continue
            n = crystal.num_atoms
            if n > M:
                raise InvalidRecordError(f"{n} atoms exceed the run's max_atoms={M}", record=f"{self.id}/{a + i}")
            num[i], offset[i] = n, a0 + cursor
            z[cursor : cursor + n] = crystal.atomic_numbers
            x[cursor : cursor + n] = crystal.frac_coords
            lat[i] = crystal.lattice
            cursor += n
        seeds = np.full(S, -1, dtype=np.int64)
        seeds[: b - a] = seed
        tindex = np.full(S, -1, dtype=np.int32)
        tindex[: b - a] = self.index
        g = self._g
        g["sample/atomic_numbers"][a0:a1] = z
        g["sample/frac_coords"][a0:a1] = x
        g["sample/lattice"][r0:r1] = lat
        g["sample/seed"][r0:r1] = seeds
        g["sample/target_index"][r0:r1] = tindex
        g["sample/atom_offset"][r0:r1] = offset
        g["sample/num_atoms"][r0:r1] = num

    def write_relaxed(
        self,
        shard: int,
        crystals: Sequence[Crystal | None],
        *,
        energy_unrelaxed: np.ndarray,
        energy_relaxed: np.ndarray,
        formation_energy: np.ndarray,
        steps: np.ndarray,
        flags: np.ndarray,
        energy_above_hull: np.ndarray | None = None,
    ) -> None:
        """Write relaxed structures (same atoms, same order as sampled), energies (eV/atom) and filter flags."""
        self._check_writable()
        a, b = self.shard_rows(shard)
        n = b - a
        arrays = {"energy_unrelaxed": energy_unrelaxed, "energy_relaxed": energy_relaxed,
                  "formation_energy": formation_energy, "steps": steps, "flags": flags}
        if energy_above_hull is not None:
            arrays["energy_above_hull"] = energy_above_hull
        for name, arr in arrays.items():
            if np.shape(arr) != (n,):
                raise StoreError(f"target {self.id!r} shard {shard}: {name} has shape {np.shape(arr)}, expected ({n},)")
        if len(crystals) != n:
            raise StoreError(f"target {self.id!r} shard {shard} has {n} candidates, got {len(crystals)} relaxed structures")
        r0, r1, a0, a1 = self._padded(shard)
        S, M = self.layout.shard_size, self.layout.max_atoms
        num = self._g["sample/num_atoms"][r0:r1]
        offset = self._g["sample/atom_offset"][r0:r1]
        x = np.full((S * M, 3), np.nan)
        lat = np.full((S, 3, 3), np.nan)
        for i, crystal in enumerate(crystals):
            if crystal is None:
                continue
            if crystal.num_atoms != num[i]:
                raise StoreError(
                    f"target {self.id!r} row {a + i}: relaxed structure has {crystal.num_atoms} atoms, sampled {num[i]}"
                )
            start = offset[i] - a0
            x[start : start + num[i]] = crystal.frac_coords
            lat[i] = crystal.lattice

        def pad(arr: np.ndarray, fill: Any, dtype: str) -> np.ndarray:
            out = np.full(S, fill, dtype=dtype)
            out[:n] = arr
            return out

        g = self._g
        g["relax/frac_coords"][a0:a1] = x
        g["relax/lattice"][r0:r1] = lat
        for name in ("energy_unrelaxed", "energy_relaxed", "formation_energy", "energy_above_hull"):
            if name in arrays and f"relax/{name}" in g:  # runs created before energy_above_hull lack the array
                g[f"relax/{name}"][r0:r1] = pad(np.asarray(arrays[name], dtype=np.float64), np.nan, "float64")
        g["relax/steps"][r0:r1] = pad(np.asarray(steps), -1, "int32")
        g["relax/flags"][r0:r1] = pad(np.asarray(flags), 0, "uint32")

    def write_scores(self, shard: int, scores: np.ndarray) -> None:
        """Write ranking scores of one shard (lower is better; NaN = not ranked, e.g. filtered out)."""
        self._check_writable()
        a, b = self.shard_rows(shard)
        if np.shape(scores) != (b - a,):
            raise StoreError(f"target {self.id!r} shard {shard}: {np.shape(scores)} scores for {b - a} candidates")
        r0, r1, _, _ = self._padded(shard)
        out = np.full(r1 - r0, np.nan)
        out[: b - a] = scores
        self._g["rank/score"][r0:r1] = out

    def write_selection(self, rows: np.ndarray, scores: np.ndarray) -> None:
        """Write the top-K candidate rows (best first). Only the driver calls this."""
        self._check_writable()
        K = self.layout.top_k
        rows = np.asarray(rows, dtype=np.int64)
        if rows.shape[0] > K or rows.shape != np.shape(scores):
            raise StoreError(f"selection of {rows.shape[0]} rows / {np.shape(scores)} scores for top_k={K}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_candidates):
            raise StoreError(f"selection rows outside 0..{self.n_candidates - 1}")
        r = np.full(K, -1, dtype=np.int64)
        s = np.full(K, np.nan)
        r[: rows.size], s[: rows.size] = rows, scores
        self._g["select/row"][:] = r
        self._g["select/score"][:] = s

    def write_dft(self, k: int, site_dos: np.ndarray, energy: float, efermi: float) -> None:
        """Write the DFT result of selection slot ``k``: site DOS (n_atoms, C, G) on the layout's grid."""
        self._check_writable()
        K, M = self.layout.top_k, self.layout.max_atoms
        C, G = len(self.layout.dos_channels), self.layout.dos_grid.n
        if not 0 <= k < K:
            raise StoreError(f"selection slot {k} outside 0..{K - 1}")
        dos = np.asarray(site_dos, dtype=np.float32)
        if dos.ndim != 3 or dos.shape[0] > M or dos.shape[1:] != (C, G):
            raise StoreError(f"DFT site DOS has shape {dos.shape}, expected (n_atoms<={M}, {C}, {G})")
        block = np.full((1, M, C, G), np.nan, dtype=np.float32)
        block[0, : dos.shape[0]] = dos
        self._g["dft/site_dos"][k : k + 1] = block
        self._g["dft/energy"][k : k + 1] = [energy]
        self._g["dft/efermi"][k : k + 1] = [efermi]

    # ---------------------------------------------------------------- read
    def read_crystals(self, stage: str = "sample", shard: int | None = None) -> list[Crystal | None]:
        """Structures of one shard (or all candidates) after ``stage`` ("sample" or "relax"); None where absent."""
        if stage not in ("sample", "relax"):
            raise StoreError(f"structures exist for stages 'sample' and 'relax', not {stage!r}")
        if shard is None:
            rows = (0, self.n_candidates)
            M = self.layout.max_atoms
            atoms = (0, self.num_shards * self.layout.shard_size * M)
        else:
            a, b = self.shard_rows(shard)
            _, _, a0, a1 = self._padded(shard)
            rows, atoms = (a, b), (a0, a1)
        g = self._g
        num = g["sample/num_atoms"][rows[0] : rows[1]]
        offset = g["sample/atom_offset"][rows[0] : rows[1]]
        z = g["sample/atomic_numbers"][atoms[0] : atoms[1]]
        x = g[f"{stage}/frac_coords"][atoms[0] : atoms[1]]
        lat = g[f"{stage}/lattice"][rows[0] : rows[1]]
        out: list[Crystal | None] = []
        for i in range(rows[1] - rows[0]):
            n = int(num[i])
            if n == 0 or not np.all(np.isfinite(lat[i])):
                out.append(None)
                continue
            s = int(offset[i]) - atoms[0]
            try:
                out.append(Crystal(z[s : s + n], x[s : s + n], lat[i], {"target": self.id, "row": rows[0] + i}))
            except InvalidRecordError as exc:
                raise StoreError(f"corrupt structure at target {self.id!r} row {rows[0] + i}: {exc}") from exc
        return out

    def column(self, name: str, shard: int | None = None) -> np.ndarray:
        """A per-candidate array (e.g. "relax/flags", "rank/score") for one shard or all real candidates."""
        if name not in self._g:
            raise StoreError(f"run store has no array {name!r} for target {self.id!r}")
        a, b = (0, self.n_candidates) if shard is None else self.shard_rows(shard)
        return self._g[name][a:b]

    def selection(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the selected top-K (rows == -1 dropped)."""
        rows = self._g["select/row"][:]
        scores = self._g["select/score"][:]
        keep = rows >= 0
        return rows[keep], scores[keep]

    def read_dft(self, k: int) -> dict[str, Any]:
        rows, _ = self.selection()
        if not 0 <= k < rows.size:
            raise StoreError(f"no selected candidate in slot {k}")
        n = int(self._g["sample/num_atoms"][int(rows[k])])
        return {
            "row": int(rows[k]),
            "site_dos": self._g["dft/site_dos"][k, :n],
            "energy": float(self._g["dft/energy"][k]),
            "efermi": float(self._g["dft/efermi"][k]),
        }

    # ---------------------------------------------------------- manifest
    def pending(self, stage: str) -> list[int]:
        """Shards (or, for "dft", selection slots) of ``stage`` that are not complete."""
        if stage == "dft":
            # a target may send only its first ``metadata["dft_slots"]`` selected candidates to DFT (design runs
            # select ``top_k`` for the report and check fewer with DFT)
            limit = self.metadata.get("dft_slots")
            n = self.selection()[0].size
            units = range(n if limit is None else min(n, int(limit)))
        elif stage == "select":
            units = range(1)
        else:
            units = range(self.num_shards)
        return self.store.manifest.pending(stage, self.id, units)

    def mark_done(self, stage: str, unit: int, **info: Any) -> None:
        if stage not in STAGES:
            raise StoreError(f"unknown stage {stage!r}; stages are {STAGES}")
        self.store.manifest.mark_done(stage, self.id, unit, **info)
