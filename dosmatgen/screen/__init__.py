"""Screening: sample -> relax/filter -> rank -> DFT top K over one run store.

* :mod:`dosmatgen.screen.config`: the YAML config as dataclasses.
* :mod:`dosmatgen.screen.stages`: the stage-function contracts and the per-unit work functions that every
  backend (in-process, Ray, Dask, submitit; see the top-level ``cluster`` package) calls.
* :mod:`dosmatgen.screen.targets`: building the target plans (conditioning DOS) from the config.
* :mod:`dosmatgen.screen.baseline`: a random-structure sampler, an EMT relaxer and a formation-energy scorer
  (real, small reference implementations of the stage contracts, used by CI and as baselines).
"""
