"""dosmatgen: inverse design of crystalline materials from their electronic density of states.

The science library. It never imports Ray, Dask, submitit or Slurm; ``cluster/`` does.
"""

__version__ = "0.1.0"
