"""Orchestration of dosmatgen on clusters: Ray sampling actors, Ray Train, Dask relaxation, submitit DFT,
MPI bootstrap and the ``screen`` driver. Imports :mod:`dosmatgen`; the library never imports this package."""
