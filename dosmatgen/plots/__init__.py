"""Figures of the evaluation (matplotlib, Agg backend; every figure is written as PNG and SVG).

* :mod:`~dosmatgen.plots.dos_comparison` — target vs generated site DOS of the conditioned site (paper Figs 4–6, 8).
* :mod:`~dosmatgen.plots.energy_histograms` — formation-energy histograms (generated vs ground truth,
  relaxed vs unrelaxed; paper Figs 2, 7).
* :mod:`~dosmatgen.plots.training_curves` — curves from a ``metrics.jsonl`` training log.
* :mod:`~dosmatgen.plots.surrogate_comparison` — target vs surrogate vs DFT DOS of one site or crystal.
"""
