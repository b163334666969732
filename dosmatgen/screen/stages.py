"""Stage contracts and the per-unit work functions of a screening run.

Each stage is a library callable built ONCE per process by a *loader* named in the config as
``"module:function"`` (so a Ray actor loads a checkpoint once and a Dask worker builds its relaxer once):

* sample: ``loader(**options, device=str) -> Sampler``;
  ``Sampler(target: TargetContext, num_atoms: (n,) int array, seed: int) -> list[Crystal | None]`` (length n)
* relax:  ``loader(**options) -> Relaxer``; ``Relaxer(crystals: list[Crystal]) -> list[RelaxOutcome]``
* rank:   ``loader(**options) -> Scorer``;
  ``Scorer(crystals: list[Crystal], target: TargetContext, formation_energy: (n,) eV/atom) -> (n,) scores``,
  lower is better
* dft:    ``loader(**options) -> engine`` with ``engine.compute_dos(crystal, id, workdir) -> DOSRecord``
  (:class:`dosmatgen.dft.engine.DFTEngine`; the default loader is :func:`dosmatgen.dft.engine.get_engine`)

The work functions below (:func:`sample_shard`, :func:`relax_shard`, :func:`rank_shard`, :func:`select_top_k`,
:func:`dft_slot`) are the units every backend runs. Each checks the manifest first (a done unit is skipped),
writes its whole unit and marks it done last, so a crash anywhere leaves the unit to be redone wholly.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dft.record_file import write_record_npz
from dosmatgen.dos.record import DOSRecord
from dosmatgen.dotted import resolve_callable  # noqa: F401  (re-exported: loaders are resolved through it)
from dosmatgen.errors import InvalidRecordError, StoreError
from dosmatgen.runstore import Flag, RunStore, TargetRun
from dosmatgen.runstore.flags import failure_flags

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- contracts
@dataclass(frozen=True, eq=False)
class TargetContext:
    """What a stage knows about a target: its id, its conditioning DOS and metadata.

    ``conditioning`` is the target site DOS on :data:`dosmatgen.dos.grid.SITE_GRID` (shape (400,), states/eV,
    channels summed, energies relative to E_F), or None for an unconditioned run.
    """

    id: str
    conditioning: np.ndarray | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, target: TargetRun) -> "TargetContext":
        return cls(target.id, target.conditioning(), dict(target.metadata))

    @classmethod
    def for_shard(cls, target: TargetRun, shard: int) -> "TargetContext":
        """The context a sampler sees for one shard: a per-candidate conditioning (n_candidates, D) (a design
        run's total DOS, one row per candidate) is cut to the shard's rows; any other conditioning is whole."""
        cond = target.conditioning()
        if cond is not None and cond.ndim == 2:
            lo, hi = target.shard_rows(shard)
            cond = cond[lo:hi]
        return cls(target.id, cond, dict(target.metadata))


@dataclass
class RelaxOutcome:
    """The result of relaxing one structure. Energies in eV/atom (NaN when unknown)."""

    crystal: Crystal | None
    energy_unrelaxed: float = float("nan")
    energy_relaxed: float = float("nan")
    formation_energy: float = float("nan")
    steps: int = -1
    converged: bool = False
    error: str | None = None
    #: why it failed, a key of dosmatgen.relax.result.FAILURE_KINDS (None: unknown or not failed)
    failure: str | None = None
    #: eV/atom above the hull of the competing phases given to the relaxer (NaN: none given, or unknown)
    energy_above_hull: float = float("nan")


class Sampler(Protocol):
    def __call__(self, target: TargetContext, num_atoms: np.ndarray, seed: int) -> list[Crystal | None]: ...


class Relaxer(Protocol):
    def __call__(self, crystals: list[Crystal]) -> list[RelaxOutcome]: ...


class Scorer(Protocol):
    def __call__(self, crystals: list[Crystal], target: TargetContext, formation_energy: np.ndarray) -> np.ndarray: ...


# ----------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class FilterConfig:
    """Filters applied after relaxation (each failed filter sets one :class:`Flag` bit).

    * ``require_converged``: flag NOT_CONVERGED relaxations
    * ``min_distance``: Å, flag OVERLAPPING_ATOMS below it
    * ``max_formation_energy``: eV/atom, flag FORMATION_ENERGY_TOO_HIGH above it, NO_FORMATION_ENERGY when there is
      none (an element without an elemental reference); None = off
    * ``volume_per_atom``: (min, max) Å^3/atom, flag BAD_VOLUME outside
    * ``max_energy_above_hull``: eV/atom, flag ABOVE_HULL above it or when unknown (the relaxer computes it from
      the competing phases it was given, see ``load_mlff_relaxer(competing_phases=...)``); None = off
    """

    require_converged: bool = True
    min_distance: float = 0.5
    max_formation_energy: float | None = None
    volume_per_atom: tuple[float, float] = (2.0, 150.0)
    max_energy_above_hull: float | None = None


def filter_flags(outcome: RelaxOutcome, cfg: FilterConfig) -> int:
    """The :class:`Flag` bits of one relaxation outcome."""
    if outcome.crystal is None or outcome.error is not None:
        return int(failure_flags(outcome.failure))
    flags = Flag.NONE
    if not np.isfinite(outcome.energy_relaxed):
        flags |= Flag.NONFINITE_ENERGY
    if cfg.require_converged and not outcome.converged:
        flags |= Flag.NOT_CONVERGED
    c = outcome.crystal
    if c.min_interatomic_distance() < cfg.min_distance:
        flags |= Flag.OVERLAPPING_ATOMS
    vpa = c.volume / max(c.num_atoms, 1)
    if not cfg.volume_per_atom[0] <= vpa <= cfg.volume_per_atom[1]:
        flags |= Flag.BAD_VOLUME
    if cfg.max_formation_energy is not None:
        fe = outcome.formation_energy
        if not np.isfinite(fe):
            flags |= Flag.NO_FORMATION_ENERGY
        elif fe > cfg.max_formation_energy:
            flags |= Flag.FORMATION_ENERGY_TOO_HIGH
    if cfg.max_energy_above_hull is not None:
        eh = outcome.energy_above_hull
        if not np.isfinite(eh) or eh > cfg.max_energy_above_hull:
            flags |= Flag.ABOVE_HULL
    return int(flags)


# ---------------------------------------------------------------------- work: one unit each
def sample_shard(store: RunStore, target_id: str, shard: int, sampler: Sampler) -> int:
    """Sample one shard into the store; return the number of candidates written (0 if already done)."""
    t = store.target(target_id)
    if store.manifest.is_done("sample", target_id, shard):
        return 0
    t0 = time.perf_counter()
    seed = t.shard_seed(shard)
    requested = t.requested_num_atoms(shard)
    crystals = list(sampler(TargetContext.for_shard(t, shard), requested, seed))
    if len(crystals) != requested.size:
        raise StoreError(f"sampler returned {len(crystals)} structures for {requested.size} requested")
    t.write_sampled(shard, crystals, seed)
    n_valid = sum(c is not None for c in crystals)
    t.mark_done("sample", shard, n=len(crystals), valid=n_valid, seed=seed, seconds=time.perf_counter() - t0)
    return len(crystals)


def relax_shard(store: RunStore, target_id: str, shard: int, relaxer: Relaxer,
                filters: FilterConfig | Mapping[str, FilterConfig]) -> dict[str, int]:
    """Relax and filter one shard; return counts {"relaxed", "passed", "failed"} (zeros if already done).
    ``filters``: one FilterConfig, or one per target id (per-target thresholds)."""
    if not isinstance(filters, FilterConfig):
        filters = filters[target_id]
    if store.manifest.is_done("relax", target_id, shard):
        return {"relaxed": 0, "passed": 0, "failed": 0}
    if not store.manifest.is_done("sample", target_id, shard):
        raise StoreError(f"cannot relax target {target_id!r} shard {shard}: it is not sampled yet")
    t = store.target(target_id)
    t0, started = time.perf_counter(), time.time()
    sampled = t.read_crystals("sample", shard)
    todo = [i for i, c in enumerate(sampled) if c is not None]
    outcomes: list[RelaxOutcome] = [RelaxOutcome(None, error="no sampled structure") for _ in sampled]
    if todo:
        results = relaxer([sampled[i] for i in todo])  # type: ignore[misc]
        if len(results) != len(todo):
            raise StoreError(f"relaxer returned {len(results)} outcomes for {len(todo)} structures")
        for i, r in zip(todo, results):
            outcomes[i] = r
    flags = np.array([filter_flags(o, filters) for o in outcomes], dtype=np.uint32)
    for i, c in enumerate(sampled):
        if c is None:
            flags[i] = int(Flag.SAMPLE_INVALID | Flag.RELAX_FAILED)
    t.write_relaxed(
        shard,
        [o.crystal if o.error is None else None for o in outcomes],
        energy_unrelaxed=np.array([o.energy_unrelaxed for o in outcomes], dtype=np.float64),
        energy_relaxed=np.array([o.energy_relaxed for o in outcomes], dtype=np.float64),
        formation_energy=np.array([o.formation_energy for o in outcomes], dtype=np.float64),
        energy_above_hull=np.array([o.energy_above_hull for o in outcomes], dtype=np.float64),
        steps=np.array([o.steps for o in outcomes], dtype=np.int32),
        flags=flags,
    )
    counts = {"relaxed": int(sum(o.error is None for o in outcomes)), "passed": int((flags == 0).sum()),
              "failed": int(sum(o.error is not None for o in outcomes))}
    kinds: dict[str, int] = {}
    for i, o in enumerate(outcomes):
        if o.error is not None and sampled[i] is not None:
            kinds[o.failure or "unknown"] = kinds.get(o.failure or "unknown", 0) + 1
    t.mark_done("relax", shard, seconds=time.perf_counter() - t0, started=started, pid=os.getpid(), failure_kinds=kinds,
                **counts)
    return counts


def rank_shard(store: RunStore, target_id: str, shard: int, scorer: Scorer) -> int:
    """Score the candidates of one shard that passed the filters; return how many were scored."""
    if store.manifest.is_done("rank", target_id, shard):
        return 0
    if not store.manifest.is_done("relax", target_id, shard):
        raise StoreError(f"cannot rank target {target_id!r} shard {shard}: it is not relaxed yet")
    t = store.target(target_id)
    relaxed = t.read_crystals("relax", shard)
    flags = t.column("relax/flags", shard)
    fe = t.column("relax/formation_energy", shard)
    keep = [i for i, c in enumerate(relaxed) if c is not None and flags[i] == 0]
    scores = np.full(len(relaxed), np.nan)
    if keep:
        s = np.asarray(scorer([relaxed[i] for i in keep], TargetContext.from_run(t), fe[keep]), dtype=np.float64)  # type: ignore[misc]
        if s.shape != (len(keep),):
            raise StoreError(f"scorer returned shape {s.shape} for {len(keep)} candidates")
        scores[keep] = s
    t.write_scores(shard, scores)
    t.mark_done("rank", shard, scored=len(keep))
    return len(keep)


def given_up_shards(store: RunStore, target_id: str) -> dict[int, dict[str, Any]]:
    """Shards that a distributed stage gave up after its retries (failure record with ``given_up``), by shard:
    the failure record of the earliest stage. Later stages skip them and selection ranks the others."""
    out: dict[int, dict[str, Any]] = {}
    for stage in ("rank", "relax", "sample"):
        for f in store.manifest.failures(stage, target_id):
            if f.get("given_up") and not store.manifest.is_done(stage, target_id, f["unit"]):
                out[int(f["unit"])] = f
    return out


def select_top_k(store: RunStore, target_id: str) -> np.ndarray:
    """Write the K best-scoring rows (ties broken by row index) once; return them (rows, best first).
    Shards given up by a stage (:func:`given_up_shards`) are left out."""
    t = store.target(target_id)
    if store.manifest.is_done("select", target_id, 0):
        return t.selection()[0]
    missing = [s for s in t.pending("rank") if s not in given_up_shards(store, target_id)]
    if missing:
        raise StoreError(f"cannot select target {target_id!r}: rank shards {missing[:5]} are not done")
    scores = t.column("rank/score")
    rows = np.flatnonzero(np.isfinite(scores))
    order = rows[np.lexsort((rows, scores[rows]))][: t.layout.top_k]
    t.write_selection(order, scores[order])
    t.mark_done("select", 0, selected=int(order.size))
    return order


def dos_on_grid(record: DOSRecord, layout_grid, channels: Sequence[str]) -> np.ndarray:
    """The record's site DOS (n_atoms, C, G) on the run's grid and channels (("total",) sums the record's channels)."""
    if record.site_dos is None or record.energies is None:
        raise InvalidRecordError("DFT record has no site DOS", record=record.id)
    site = np.asarray(record.site_dos, dtype=np.float64)
    if tuple(channels) == ("total",):
        site = site.sum(axis=1, keepdims=True)
    elif tuple(channels) != tuple(record.channels):
        raise InvalidRecordError(f"DFT record has channels {record.channels}, the run stores {tuple(channels)}", record=record.id)
    e = np.asarray(record.energies, dtype=np.float64)
    grid = layout_grid.energies
    out = np.empty(site.shape[:2] + (grid.size,))
    for a in range(site.shape[0]):
        for c in range(site.shape[1]):
            out[a, c] = np.interp(grid, e, site[a, c], left=0.0, right=0.0)
    return out


#: folder of the run holding the engine's whole record (structure, site and total DOS, E_F, energy) of each
#: finished DFT unit, ``<target>-<row>.npz`` (:mod:`dosmatgen.dft.record_file`): what a dataset can grow from
DFT_RECORDS_DIR = "dft_records"


def dft_record_path(store: RunStore, target_id: str, row: int) -> Path:
    folder = Path(store.root) / DFT_RECORDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{target_id}-{int(row)}.npz"


def dft_slot(store: RunStore, target_id: str, k: int, engine: Any, workdir: str | Path, *, write: bool = True) -> dict[str, Any]:
    """Run DFT on selection slot ``k`` and write its site DOS; failures are recorded in the manifest and re-raised.

    ``write=False`` computes without writing anything: for the non-zero ranks of an MPI-parallel engine, whose
    rank 0 writes.
    """
    if store.manifest.is_done("dft", target_id, k):
        return {"skipped": True}
    t = store.target(target_id)
    rows, _ = t.selection()
    if not 0 <= k < rows.size:
        raise StoreError(f"target {target_id!r} has no selected candidate in slot {k}")
    row = int(rows[k])
    crystal = t.read_crystals("relax", row // t.layout.shard_size)[row % t.layout.shard_size]
    if crystal is None:
        raise StoreError(f"target {target_id!r} row {row} has no relaxed structure")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        record = engine.compute_dos(crystal, f"{target_id}-{row}", workdir)
        if not write:
            return {"row": row, "written": False}
        if record.crystal.num_atoms != crystal.num_atoms:
            raise InvalidRecordError(f"DFT changed the atom count {crystal.num_atoms} -> {record.crystal.num_atoms}")
        dos = dos_on_grid(record, t.layout.dos_grid, t.layout.dos_channels)
        t.write_dft(k, dos, float("nan") if record.energy is None else float(record.energy), float(record.efermi))
        write_record_npz(record, dft_record_path(store, target_id, row))
    except Exception as exc:
        if not write:
            raise
        attempts = store.manifest.record_failure("dft", target_id, k, f"{type(exc).__name__}: {exc}", row=row)
        log.warning("DFT of %s slot %d (row %d) failed (attempt %d): %s", target_id, k, row, attempts, exc)
        raise
    info = {"row": row, "seconds": time.perf_counter() - t0}
    t.mark_done("dft", k, **info)
    return info
