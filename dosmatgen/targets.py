"""Target DOS for conditional generation: built-in demo targets, user DOS files, or a site of a known structure.

A :class:`Target` always carries the 400-point site features (unscaled, states/eV, on ``SITE_GRID``) that the
model is conditioned on, plus what it came from (for plots and reports).

Target specifications accepted by :func:`resolve_target` (and ``dosmatgen sample --target``):

* a built-in name: ``target-Au3Ni`` (Ni site of L1_2 Au3Ni) or ``target-IrO2`` (Ir site of rutile IrO2);
* a DOS file: ``.csv`` with two columns ``energy_eV, dos`` (header optional) or ``.json`` with ``energies`` and
  ``dos`` (and optionally ``efermi`` when the energies are absolute), on any grid; it is resampled to the model
  grid with the same smoothing as the training features. A ``.npy`` with exactly 400 values is taken as already
  on the model grid;
* ``STORE.zarr:ID_OR_INDEX:SITE``: site ``SITE`` of a structure in a dosmatgen dataset store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.crystal import Crystal
from dosmatgen.dos.featurize import SITE_SIGMA_EV, read_dos_csv, site_features_from_arrays
from dosmatgen.dos.grid import SITE_GRID
from dosmatgen.errors import InvalidRecordError

#: The features must carry some weight inside the model window: a DOS that is zero everywhere on [-10, 10] eV
#: (for example a grid that misses the window) is rejected.
MIN_TARGET_INTEGRAL = 1e-6


@dataclass
class Target:
    """A site-DOS target. ``features`` (400,) float32, unscaled states/eV on SITE_GRID."""

    name: str
    features: np.ndarray
    description: str = ""
    reference: Crystal | None = None
    reference_sites: tuple[int, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = np.asarray(self.features, dtype=np.float32)
        if f.shape != (SITE_GRID.n,):
            raise InvalidRecordError(f"target DOS has {f.shape} values, expected ({SITE_GRID.n},) on the model grid", record=self.name)
        if not np.all(np.isfinite(f)):
            raise InvalidRecordError("target DOS contains NaN or infinite values", record=self.name)
        if f.min() < -1e-6 * max(1.0, float(np.abs(f).max())):
            raise InvalidRecordError(f"target DOS has negative values (min {f.min():.3g})", record=self.name)
        if float(f.sum()) * SITE_GRID.step < MIN_TARGET_INTEGRAL:
            raise InvalidRecordError("target DOS is zero on the model window [-10, 10] eV (check the energy grid and E_F)", record=self.name)
        self.features = f


# ----------------------------------------------------------------------------- built-in targets
def _builtin_dir():
    return resources.files("dosmatgen") / "resources" / "targets"


def list_targets() -> list[str]:
    """Names of the built-in demo targets."""
    return sorted(p.name[: -len(".npz")] for p in _builtin_dir().iterdir() if p.name.endswith(".npz"))


def load_builtin_target(name: str, sigma_ev: float | None = SITE_SIGMA_EV) -> Target:
    names = list_targets()
    if name not in names:
        raise InvalidRecordError(f"unknown built-in target {name!r}; available: {', '.join(names)}")
    with resources.as_file(_builtin_dir() / f"{name}.npz") as path, np.load(path, allow_pickle=False) as d:
        crystal = Crystal(d["atomic_numbers"], d["frac_coords"], d["lattice"])
        sites = tuple(int(s) for s in d["sites"])
        feats = site_features_from_arrays(d["energy_grid"], d["site_pdos"][sites[0]][None], sigma_ev=sigma_ev)[0]
        return Target(
            name=name,
            features=feats,
            description=str(d["description"]),
            reference=crystal,
            reference_sites=sites,
            metadata={"provenance": json.loads(str(d["provenance"])), "structure_id": str(d["structure_id"])},
        )


# ----------------------------------------------------------------------------- user files
def target_from_file(path: str | Path, *, efermi: float = 0.0, sigma_ev: float | None = SITE_SIGMA_EV) -> Target:
    """Read a DOS file (CSV, JSON or 400-value .npy), see the module docstring."""
    p = Path(path)
    if not p.exists():
        raise InvalidRecordError("target DOS file not found", file=str(p))
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InvalidRecordError(f"cannot read .npy: {err}", file=str(p)) from None
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (SITE_GRID.n,):
            raise InvalidRecordError(
                f"a .npy target must hold {SITE_GRID.n} values on the model grid, got {values.size}; "
                "give energies too (CSV or JSON) to resample from another grid",
                file=str(p),
            )
        return _located(lambda: Target(p.stem, values, description=f"DOS from {p.name}"), p)
    if suffix == ".json":
        try:
            obj = json.loads(p.read_text())
            energies = np.asarray(obj["energies"], dtype=np.float64)
            values = np.asarray(obj["dos"], dtype=np.float64)
            efermi = float(obj.get("efermi", efermi))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InvalidRecordError(f"expected a JSON object with 'energies' and 'dos' arrays ({err!r})", file=str(p)) from None
        if energies.shape != values.shape or energies.ndim != 1:
            raise InvalidRecordError(f"'energies' has shape {energies.shape} but 'dos' has {values.shape}", file=str(p))
    elif suffix in (".csv", ".txt", ".dat"):
        energies, values = read_dos_csv(str(p), efermi=efermi)
        efermi = 0.0
    else:
        raise InvalidRecordError("unknown target format; use .csv, .json or .npy", file=str(p))

    def build() -> Target:
        feats = site_features_from_arrays(energies, values[None], efermi=efermi, sigma_ev=sigma_ev)[0]
        return Target(p.stem, feats, description=f"DOS from {p.name}", metadata={"file": str(p)})

    return _located(build, p)


def _located(fn, path: Path) -> Target:
    try:
        return fn()
    except InvalidRecordError as err:
        raise err.located(file=str(path)) from None


# ----------------------------------------------------------------------------- dataset sites
def target_from_store_site(store_path: str | Path, structure: str | int, site: int) -> Target:
    """Site ``site`` of structure ``structure`` (id or index) of a dosmatgen dataset store."""
    from dosmatgen.data.store import DatasetStore

    store = DatasetStore.open(store_path)
    ids = store.ids
    if isinstance(structure, str) and not structure.lstrip("-").isdigit():
        if structure not in ids:
            raise InvalidRecordError(f"no structure with id {structure!r} in the store", file=str(store_path))
        index = ids.index(structure)
    else:
        index = int(structure)
        if not 0 <= index < len(ids):
            raise InvalidRecordError(f"structure index {index} outside 0..{len(ids) - 1}", file=str(store_path))
    crystal = store.crystal(index)
    if not 0 <= site < crystal.num_atoms:
        raise InvalidRecordError(
            f"site {site} is beyond the {crystal.num_atoms} atoms of {ids[index]}", file=str(store_path), record=ids[index]
        )
    feats = store.site_features(index)[site]
    return Target(
        f"{ids[index]}:site{site}",
        feats,
        description=f"site {site} ({crystal.symbols[site]}) of {ids[index]} ({crystal.formula})",
        reference=crystal,
        reference_sites=(site,),
        metadata={"store": str(store_path), "structure_id": ids[index]},
    )


def resolve_target(spec: str, *, efermi: float = 0.0) -> Target:
    """Turn a ``--target`` specification into a Target (see the module docstring)."""
    if spec in list_targets():
        return load_builtin_target(spec)
    if ".zarr:" in spec:
        store, _, rest = spec.partition(".zarr:")
        parts = rest.split(":")
        if len(parts) != 2 or not parts[1].isdigit():
            raise InvalidRecordError(f"expected STORE.zarr:ID_OR_INDEX:SITE, got {spec!r}")
        return target_from_store_site(store + ".zarr", parts[0], int(parts[1]))
    p = Path(spec)
    if p.suffix:
        return target_from_file(p, efermi=efermi)
    raise InvalidRecordError(f"unknown target {spec!r}: not a built-in ({', '.join(list_targets())}), a DOS file or STORE.zarr:ID:SITE")


def plot_target(target: Target, out: str | Path) -> list[Path]:
    """Plot the target features (and its reference composition) to ``out`` (.png; an .svg is written beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(SITE_GRID.energies, target.features, color="C3", lw=1.5)
    ax.fill_between(SITE_GRID.energies, target.features, color="C3", alpha=0.15)
    ax.axvline(0.0, color="k", ls="--", lw=0.8)
    ax.set_xlabel("E - E_F (eV)")
    ax.set_ylabel("site DOS (states/eV)")
    title = target.name
    if target.reference is not None and target.reference_sites:
        el = target.reference.symbols[target.reference_sites[0]]
        title += f"  ({el} site in {target.reference.formula})"
    ax.set_title(title)
    ax.set_xlim(SITE_GRID.emin, SITE_GRID.emax)
    fig.tight_layout()
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths
