"""Closed-loop discovery (``dosmatgen loop``): screen -> DFT -> grow the dataset -> fine-tune, round after round.

Start from :func:`dosmatgen.loop.driver.run_loop`; the config is described in :mod:`dosmatgen.loop.config`.
"""
