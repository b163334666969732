"""Datasets: source readers (:mod:`dosmatgen.data.sources`, yielding :class:`~dosmatgen.dos.record.DOSRecord`),
the Zarr dataset store and its builder."""
