"""The run store of a screening run: one Zarr v3 group per run, whole shards per writer, a file manifest.

See :mod:`dosmatgen.runstore.store` for the layout and the concurrency rules.
"""

from dosmatgen.runstore.flags import Flag, describe_flags
from dosmatgen.runstore.layout import RunLayout, TargetPlan
from dosmatgen.runstore.manifest import Manifest
from dosmatgen.runstore.seeds import shard_seed
from dosmatgen.runstore.store import SCHEMA_VERSION, STAGES, RunStore, TargetRun

__all__ = [
    "Flag",
    "describe_flags",
    "RunLayout",
    "TargetPlan",
    "Manifest",
    "shard_seed",
    "SCHEMA_VERSION",
    "STAGES",
    "RunStore",
    "TargetRun",
]
