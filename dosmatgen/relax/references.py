"""Elemental reference energies (eV/atom) computed with the SAME force field, cached on disk.

The reference set (what :func:`reference_candidates` builds for element Z):

* **Solids with an ASE reference state** (``ase.data.reference_states``; fcc, bcc, hcp, diamond, sc,
  bct, rhombohedral, e.g. Na bcc, Mg hcp, Al fcc, Si diamond, As/Sb/Bi A7): ``ase.build.bulk(symbol)``
  at ASE's experimental lattice constants, then relaxed (positions + cell).
* **Diatomic gases and halogens** H, N, O, F, Cl, Br, I: one isolated X2 molecule in a 12 Å cubic
  box (bond length from experiment: 0.74, 1.10, 1.21, 1.42, 1.99, 2.28, 2.67 Å), positions relaxed,
  box fixed. No empirical O2/N2/... correction is applied: the formation energy uses the MLFF's own
  molecule, so (for CHGNet, trained on Materials Project energies that include MP2020 anion
  corrections) oxides and halides carry whatever the model learned. The validation test states the
  agreement with experiment this gives.
* **Elements whose ground state is complex** (ASE has no buildable reference: He, B, P, S, Mn, Ga, Se,
  Te, Pm): the lowest relaxed energy among simple prototypes fcc, bcc, hcp, sc and diamond at a volume
  from the covalent radius (for He and Rn also from the van der Waals radius). These are upper bounds of the
  true elemental energy (typically by 0.0 to 0.3 eV/atom for B, P, S, Se, Te, Ga, Mn), so formation energies of
  their compounds come out too negative by that much; the cache records ``approximate: true`` for them.
* **Heavy elements Z = 84..100** (in the model's vocabulary, which runs to Fm; the bundled data stop at Bi):
  ASE's reference state where it is a simple lattice (Po sc, Ac fcc, Th fcc), else the prototype search above
  (At, Rn, Fr, Ra, Pa, U, Np, Pu and the later actinides). The prototype energy is an upper bound where the true
  ground state is complex (α-U, α-Np and α-Pu are low-symmetry structures: expect it to be tenths of an eV/atom
  too high there), recorded as ``approximate: true``. A force field that does not support an element (e.g.
  CHGNet beyond Pu) gives no reference for it, and formation energies of its compounds are NaN.

Each element is relaxed once (batched, all candidates of all missing elements in one run) and stored in
a JSON cache keyed by the MLFF's ``cache_key`` (name@version), so a different model never reuses another
model's references. Only the elements asked for are computed (lazily).

A shipped table (``dosmatgen/resources/references/<name>@<version>.json``, built by ``tools/build_reference_table.py``
with this code) is consulted before computing: an element found there for the same force field, fmax and max_steps
is copied into the cache instead of being relaxed again. An element none of whose structures relaxes is recorded
in the cache's ``failed`` map with the reason: structures holding it get NaN formation energies, the others keep
theirs.

Many processes may share one cache file (a screen's Dask workers all use ``<run>/references/elemental.json``):
computing missing elements happens under an exclusive lock on ``<cache>.lock`` (``fcntl.flock``), and the cache
is re-read once the lock is held, so each element is relaxed by exactly one process and the others read it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.elements import symbol
from dosmatgen.errors import InvalidRecordError
from dosmatgen.io.atomic import atomic_write
from dosmatgen.relax.mlff import MLFF
from dosmatgen.relax.prefilter import PrefilterSettings

log = logging.getLogger(__name__)

#: Elements covered by the reference set: the whole model vocabulary (H..Fm).
MAX_REFERENCE_Z = 100
#: Beyond Bi, ASE reference states used as they are (simple lattices); the others go to the prototype search.
HEAVY_SIMPLE_STATES = ("fcc", "bcc", "hcp", "sc")
#: X2 molecules: bond length in Å (experimental equilibrium bond lengths, CRC Handbook).
DIATOMIC_BOND_LENGTHS = {"H": 0.741, "N": 1.098, "O": 1.208, "F": 1.412, "Cl": 1.988, "Br": 2.281, "I": 2.666}
#: Box edge for isolated molecules, Å (twice CHGNet's 6 Å graph cutoff).
MOLECULE_BOX = 12.0
#: Elements relaxed in several simple prototypes, keeping the lowest (their ground state is complex).
PROTOTYPE_SEARCH_ELEMENTS = ("He", "B", "P", "S", "Mn", "Ga", "Se", "Te", "Pm")
PROTOTYPES = ("fcc", "bcc", "hcp", "sc", "diamond")
#: prototypes of these start from the van der Waals radius as well as the covalent one
NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe", "Rn")


def shipped_table_path(cache_key: str) -> Path:
    """Where dosmatgen ships the reference table of the force field with ``cache_key`` (it may not exist)."""
    from importlib import resources

    return Path(str(resources.files("dosmatgen") / "resources" / "references")) / f"{_safe_name(cache_key)}.json"


def _safe_name(cache_key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in cache_key)


def default_cache_dir() -> Path:
    """``$DOSMATGEN_CACHE/elemental_references`` or ``~/.cache/dosmatgen/elemental_references``."""
    root = os.environ.get("DOSMATGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dosmatgen")
    return Path(root) / "elemental_references"


@dataclass(frozen=True)
class ReferenceCandidate:
    """One structure that may be element Z's reference: kind is ``solid``, ``molecule`` or ``prototype``."""

    z: int
    kind: str
    label: str
    crystal: Crystal
    relax_cell: bool = True


def _molecule(sym: str, z: int) -> Crystal:
    d = DIATOMIC_BOND_LENGTHS[sym]
    c = MOLECULE_BOX / 2
    cart = np.array([[c, c, c - d / 2], [c, c, c + d / 2]])
    lattice = np.eye(3) * MOLECULE_BOX
    return Crystal(np.array([z, z]), cart / MOLECULE_BOX, lattice)


def _prototype(sym: str, z: int, kind: str, radius: str = "covalent") -> Crystal:
    from ase.build import bulk
    from ase.data import covalent_radii, vdw_radii

    r = float(vdw_radii[z] if radius == "vdw" else covalent_radii[z])
    d = 2 * r  # nearest-neighbour distance
    if kind == "fcc":
        atoms = bulk(sym, "fcc", a=d * np.sqrt(2))
    elif kind == "bcc":
        atoms = bulk(sym, "bcc", a=2 * d / np.sqrt(3))
    elif kind == "hcp":
        atoms = bulk(sym, "hcp", a=d, c=d * np.sqrt(8 / 3))
    elif kind == "sc":
        atoms = bulk(sym, "sc", a=d)
    elif kind == "diamond":
        atoms = bulk(sym, "diamond", a=4 * d / np.sqrt(3))
    else:
        raise ValueError(kind)
    return Crystal.from_ase(atoms)


def _prototypes(sym: str, z: int) -> list[ReferenceCandidate]:
    """The prototype search of element ``z``: every prototype from the covalent radius and, for the noble gases (van
    der Waals solids: He's covalent 0.28 A gives cells the prefilter rejects), from the van der Waals radius too."""
    from ase.data import vdw_radii

    out = [ReferenceCandidate(z, "prototype", p, _prototype(sym, z, p)) for p in PROTOTYPES]
    if sym in NOBLE_GASES and np.isfinite(vdw_radii[z]):
        out += [ReferenceCandidate(z, "prototype", f"{p} (vdW radius)", _prototype(sym, z, p, "vdw")) for p in PROTOTYPES]
    return out


def _simple_heavy_state(z: int) -> bool:
    from ase.data import reference_states

    state = reference_states[z] if z < len(reference_states) else None
    return bool(state) and state.get("symmetry") in HEAVY_SIMPLE_STATES


def reference_candidates(z: int) -> list[ReferenceCandidate]:
    """The structures tried for element ``z`` (see the module docstring)."""
    from ase.build import bulk

    z = int(z)
    if not 1 <= z <= MAX_REFERENCE_Z:
        raise InvalidRecordError(f"no elemental reference for Z={z}: the reference set covers Z = 1..{MAX_REFERENCE_Z}")
    sym = symbol(z)
    if sym in DIATOMIC_BOND_LENGTHS:
        return [ReferenceCandidate(z, "molecule", f"{sym}2 in {MOLECULE_BOX:g} A box", _molecule(sym, z), relax_cell=False)]
    if sym in PROTOTYPE_SEARCH_ELEMENTS or (z > 83 and not _simple_heavy_state(z)):
        return _prototypes(sym, z)
    try:
        atoms = bulk(sym)
    except Exception as exc:  # noqa: BLE001 - fall back to the prototype search
        log.warning("ase.build.bulk(%s) failed (%s); using the prototype search", sym, exc)
        return _prototypes(sym, z)
    return [ReferenceCandidate(z, "solid", f"ASE reference state {sym}", Crystal.from_ase(atoms))]


def _relax_fixed_cell(candidates: list[ReferenceCandidate], mlff: MLFF, fmax: float, max_steps: int) -> list[dict]:
    """Molecules: positions only (box fixed), ASE FIRE one at a time (few, 2-atom systems)."""
    from ase.optimize import FIRE

    from dosmatgen.relax.ase_calculator import MLFFCalculator

    rows = []
    for cand in candidates:
        atoms = cand.crystal.to_ase()
        atoms.calc = MLFFCalculator(mlff)
        try:
            opt = FIRE(atoms, logfile=None)
            converged = bool(opt.run(fmax=fmax, steps=max_steps))
            energy = float(atoms.get_potential_energy())
            rows.append({"energy": energy, "converged": converged, "steps": int(opt.nsteps), "crystal": Crystal.from_ase(atoms)})
        except Exception as exc:  # noqa: BLE001
            rows.append({"energy": float("nan"), "converged": False, "steps": 0, "crystal": None, "reason": str(exc)})
    return rows


class ElementalReferences:
    """Lazily computed, disk-cached elemental reference energies for one MLFF.

    ``energy_per_atom(z)`` returns eV/atom, computing (and caching) any element not yet known.
    ``cache_path`` defaults to ``<default_cache_dir()>/<name>@<version>.json`` (unsafe characters replaced).

    ``shipped`` (default True): an element missing from the cache is first looked up in the table that ships with
    dosmatgen for this force field (:func:`shipped_table_path`, made by ``tools/build_reference_table.py`` with this
    same code), used only when its force-field key, ``fmax`` and ``max_steps`` are this object's; the entry is copied
    into the cache with ``"source": "shipped table"``. Otherwise, or for an element the table lacks, it is computed.
    """

    def __init__(self, mlff: MLFF, cache_path: str | os.PathLike | None = None, fmax: float = 0.02, max_steps: int = 800,
                 shipped: bool = True) -> None:
        self.mlff = mlff
        self.cache_path = Path(cache_path) if cache_path is not None else default_cache_dir() / f"{_safe_name(mlff.cache_key)}.json"
        self.fmax = fmax
        self.max_steps = max_steps
        self.shipped = shipped
        self._failed: dict[str, str] = {}  # symbol -> why no reference structure of it relaxed
        self._entries: dict[str, dict] = self._load()

    def _shipped_table(self) -> tuple[dict[str, dict], dict[str, str]]:
        """The shipped table's (entries, failures) by symbol for this force field and these settings (empty when
        there is none)."""
        path = shipped_table_path(self.mlff.cache_key)
        if not (self.shipped and path.is_file()):
            return {}, {}
        data = json.loads(path.read_text())
        if (data.get("mlff"), data.get("fmax"), data.get("max_steps")) != (self.mlff.cache_key, self.fmax, self.max_steps):
            return {}, {}
        entries = {sym: {**entry, "source": "shipped table"} for sym, entry in data.get("elements", {}).items()}
        return entries, dict(data.get("failed", {}))

    def _load(self) -> dict[str, dict]:
        if not self.cache_path.is_file():
            return {}
        try:
            data = json.loads(self.cache_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable reference cache %s: %s", self.cache_path, exc)
            return {}
        if data.get("mlff") != self.mlff.cache_key:
            log.warning("reference cache %s belongs to %s, not %s; recomputing", self.cache_path, data.get("mlff"), self.mlff.cache_key)
            return {}
        self._failed.update(data.get("failed", {}))
        return dict(data.get("elements", {}))

    def _save(self) -> None:
        payload = {"mlff": self.mlff.cache_key, "fmax": self.fmax, "elements": dict(sorted(self._entries.items(), key=lambda kv: kv[1]["z"])),
                   "failed": dict(sorted(self._failed.items()))}
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.cache_path) as fh:
            fh.write(json.dumps(payload, indent=1))

    @contextlib.contextmanager
    def _exclusive(self):
        """Hold an exclusive lock on ``<cache>.lock`` (other processes sharing the cache wait)."""
        import fcntl

        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.cache_path.with_name(self.cache_path.name + ".lock"), "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @property
    def known(self) -> dict[int, float]:
        return {int(v["z"]): float(v["energy_per_atom"]) for v in self._entries.values()}

    @property
    def failed(self) -> dict[int, str]:
        """Elements with no reference because every one of their reference structures failed to relax: Z -> why.
        Structures holding them get no formation energy (the others do)."""
        from dosmatgen.elements import atomic_number

        return {atomic_number(sym): why for sym, why in self._failed.items()}

    def ensure(self, elements: Iterable[int]) -> None:
        """Compute and cache every element of ``elements`` that is not cached yet (one batched relaxation). An element
        whose reference structures all fail is recorded in :attr:`failed` (and cached as such), not raised."""
        wanted = {int(z) for z in elements}
        if not wanted - set(self.known) - set(self.failed):
            return
        with self._exclusive():
            self._entries.update(self._load())  # another process may have computed them while we waited
            missing = sorted(wanted - set(self.known) - set(self.failed))
            if not missing:
                return
            entries, failures = self._shipped_table()
            for sym in map(symbol, missing):
                if sym in entries:
                    self._entries[sym] = entries[sym]
                elif sym in failures:
                    self._failed[sym] = failures[sym]
            missing = [z for z in missing if symbol(z) not in self._entries and symbol(z) not in self._failed]
            if missing:
                self._compute(missing)  # saves the cache, the shipped entries with it
            else:
                self._save()

    def _compute(self, missing: list[int]) -> None:
        from dosmatgen.relax.batched_fire import BatchedRelaxer, RelaxSettings

        unsupported = [z for z in missing if z not in self.mlff.supported_elements]
        if unsupported:
            raise InvalidRecordError(f"{self.mlff.name} does not support {', '.join(symbol(z) for z in unsupported)}: no reference energy")
        candidates = [c for z in missing for c in reference_candidates(z)]
        solids = [c for c in candidates if c.relax_cell]
        molecules = [c for c in candidates if not c.relax_cell]
        log.info("computing %s elemental references for %s (%d structures)", self.mlff.name, [symbol(z) for z in missing], len(candidates))
        rows: dict[int, dict] = {}
        if solids:
            settings = RelaxSettings(fmax=self.fmax, max_steps=self.max_steps, batch_size=64, prefilter=PrefilterSettings(max_volume_per_atom=None))
            results = BatchedRelaxer(self.mlff, settings).run([c.crystal for c in solids])
            for cand, res in zip(solids, results):
                rows[id(cand)] = {"energy": res.energy_relaxed if res.ok else float("nan"), "converged": res.converged, "steps": res.steps, "crystal": res.relaxed, "reason": res.reason}
        if molecules:
            for cand, row in zip(molecules, _relax_fixed_cell(molecules, self.mlff, self.fmax, self.max_steps)):
                rows[id(cand)] = row
        for z in missing:
            best = None
            for cand in (c for c in candidates if c.z == z):
                row = rows[id(cand)]
                if not np.isfinite(row["energy"]):
                    continue
                e_atom = row["energy"] / cand.crystal.num_atoms
                if best is None or e_atom < best[0]:
                    best = (e_atom, cand, row)
            if best is None:
                reasons = sorted({str(rows[id(c)].get("reason") or "non-finite energy") for c in candidates if c.z == z})
                self._failed[symbol(z)] = f"{self.mlff.name}: every reference structure failed to relax ({'; '.join(reasons)})"
                log.warning("no elemental reference for %s: %s", symbol(z), self._failed[symbol(z)])
                continue
            e_atom, cand, row = best
            relaxed: Crystal | None = row["crystal"]
            self._entries[symbol(z)] = {
                "z": z,
                "energy_per_atom": float(e_atom),
                "kind": cand.kind,
                "structure": cand.label,
                "approximate": cand.kind == "prototype",
                "converged": bool(row["converged"]),
                "steps": int(row["steps"]),
                "n_atoms": cand.crystal.num_atoms,
                "lattice": relaxed.lattice.tolist() if relaxed is not None else None,
                "volume_per_atom": relaxed.volume / relaxed.num_atoms if relaxed is not None else None,
            }
        self._save()

    def energy_per_atom(self, z: int) -> float:
        """Reference energy of element ``z`` in eV/atom (computed and cached on first use)."""
        self.ensure([z])
        if int(z) in self.failed:
            raise InvalidRecordError(f"no elemental reference for {symbol(z)}: {self.failed[int(z)]}")
        return self.known[int(z)]

    def entry(self, z: int) -> dict:
        self.ensure([z])
        return dict(self._entries[symbol(z)])
