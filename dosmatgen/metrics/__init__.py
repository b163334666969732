"""Evaluation metrics for generated crystals, one concept per module.

* :mod:`~dosmatgen.metrics.dos_match` — DOS agreement (MAE on scaled features, cosine, Pearson, JS divergence,
  DOS-derived property errors), each paired with a random-pair (derangement) baseline.
* :mod:`~dosmatgen.metrics.structure_match` — structure and composition match rates against the conditioning structures.
* :mod:`~dosmatgen.metrics.validity` — structural and compositional (SMACT) validity.
* :mod:`~dosmatgen.metrics.diversity` — uniqueness within a batch and novelty against a training set.
* :mod:`~dosmatgen.metrics.energy` — formation-energy distributions (summaries, Wasserstein-1 distance).
* :mod:`~dosmatgen.metrics.suite` — :func:`generation_metrics`, every metric of one protocol setting at once.
* :mod:`~dosmatgen.metrics.timed_matcher` — pymatgen ``StructureMatcher`` with a per-call timeout.
* :mod:`~dosmatgen.metrics.derangement` — seeded permutations without fixed points (random-pair baselines).
* :mod:`~dosmatgen.metrics.paired` — a per-sample metric paired with its random-pair baseline.
* :mod:`~dosmatgen.metrics.inputs` — coercion of generated outputs (possibly empty/NaN) into crystals, input checks.

Every metric returns a small dataclass with a ``to_dict()`` so that a protocol runner only composes them and
dumps ``metrics.json``.
"""
