"""Layout of a dosmatgen dataset store (Zarr v3), version 1.

A store is one Zarr v3 group. Structure ``i`` owns the atoms ``offsets[i]:offsets[i+1]`` of the flat
per-atom arrays (N structures, M atoms in total):

per atom (M rows)
    ``atomic_numbers`` (M,) int16, Z; ``frac_coords`` (M, 3) float64 in [0, 1);
    ``site_dos`` (M, 400) float16, raw (unscaled) site features on ``SITE_GRID`` (states/eV), DOS stores only.
per structure (N rows)
    ``offsets`` (N+1,) int64; ``num_atoms`` (N,) int32; ``lattice`` (N, 3, 3) float64, rows in Å;
    ``id`` / ``source`` / ``metadata`` (N,) variable-length UTF-8 strings (``metadata`` holds JSON);
    ``energy`` / ``efermi`` (N,) float64, eV (NaN where unknown); ``split`` (N,) int8 (0 train, 1 val, 2 test);
    ``total_dos`` (N, 256) float16, raw per-atom total-DOS features on ``TOTAL_GRID`` (states/eV/atom), DOS stores only;
    ``properties/<name>`` (N,) float32, DOS-derived properties, DOS stores only.
scalers (DOS stores only; fitted on the train split)
    ``scalers/site/<key>`` and ``scalers/total/<key>``: the arrays of a ``PerBinStandardScaler``.

The group attribute ``dosmatgen`` holds ``kind``, ``schema_version``, ``has_dos``, the grids, the
featurizer settings, the split rule, counts and provenance.
"""

from __future__ import annotations

STORE_KIND = "dosmatgen-dataset"
SCHEMA_VERSION = 1
#: Key of the group attribute that holds everything dosmatgen records about a store.
ATTRS_KEY = "dosmatgen"

SPLIT_NAMES = ("train", "val", "test")
SPLIT_CODES = {name: code for code, name in enumerate(SPLIT_NAMES)}

# per-atom arrays
ATOMIC_NUMBERS = "atomic_numbers"
FRAC_COORDS = "frac_coords"
SITE_DOS = "site_dos"
# per-structure arrays
OFFSETS = "offsets"
NUM_ATOMS = "num_atoms"
LATTICE = "lattice"
ID = "id"
SOURCE = "source"
METADATA = "metadata"
ENERGY = "energy"
EFERMI = "efermi"
SPLIT = "split"
TOTAL_DOS = "total_dos"
PROPERTIES_GROUP = "properties"
SCALERS_GROUP = "scalers"
SITE_SCALER = "site"
TOTAL_SCALER = "total"

#: Arrays every store has, DOS or not.
REQUIRED_ARRAYS = (OFFSETS, NUM_ATOMS, LATTICE, ID, SOURCE, METADATA, ENERGY, EFERMI, SPLIT, ATOMIC_NUMBERS, FRAC_COORDS)
#: Arrays a store with ``has_dos = true`` has in addition.
DOS_ARRAYS = (SITE_DOS, TOTAL_DOS)
