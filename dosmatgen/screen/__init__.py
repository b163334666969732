"""Screening: sample -> relax/filter -> rank -> DFT top K over one run store.

* :mod:`dosmatgen.screen.config`: the YAML config as dataclasses.
* :mod:`dosmatgen.screen.driver`: ``dosmatgen screen``: the stages in order over one run store, resume, summary.
* :mod:`dosmatgen.screen.executors`: the executor interface (map shards, run DFT), the inline executor and the
  backend registry; Ray, Dask and submitit executors live in ``dosmatgen_cluster`` and are found by name.
* :mod:`dosmatgen.screen.pending`: which units are left to do (plain run-store logic).
* :mod:`dosmatgen.screen.stages`: the stage-function contracts and the per-unit work functions that every
  executor calls.
* :mod:`dosmatgen.screen.targets`: building the target plans (conditioning DOS) from the config.
* :mod:`dosmatgen.screen.baseline`: a random-structure sampler, an EMT relaxer and a formation-energy scorer
  (real, small reference implementations of the stage contracts, used by CI and as baselines).
"""
