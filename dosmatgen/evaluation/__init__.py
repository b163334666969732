"""The evaluation protocol of ``dosmatgen evaluate``: the DOSMatGen paper's Tables 1 and 2 on our data.

* :mod:`~dosmatgen.evaluation.protocol` — :func:`evaluate`, the runner (writes metrics.json, metrics.md, report.md, figures);
* :mod:`~dosmatgen.evaluation.settings` — :class:`EvaluationSettings`, the protocol grid and options;
* :mod:`~dosmatgen.evaluation.hygiene` — training-split detection and refusal (hidden-split hygiene);
* :mod:`~dosmatgen.evaluation.models` — loading denoiser, regressor and surrogate with compatibility checks;
* :mod:`~dosmatgen.evaluation.conditioning_set` — the (limited, seeded) structures of the split and their site DOS;
* :mod:`~dosmatgen.evaluation.reconstruction` — regenerating each structure from all its sites' DOS;
* :mod:`~dosmatgen.evaluation.site_dos_match` — DOS match over all conditioned sites through the surrogate;
* :mod:`~dosmatgen.evaluation.energies` — optional MLFF formation energies (``--relax``);
* :mod:`~dosmatgen.evaluation.paper_reference` — the paper's numbers, for comparison only;
* :mod:`~dosmatgen.evaluation.tables`, :mod:`~dosmatgen.evaluation.report`, :mod:`~dosmatgen.evaluation.figures` — outputs;
* :mod:`~dosmatgen.evaluation.provenance` — file hashes, versions, time.
"""

from dosmatgen.evaluation.protocol import evaluate
from dosmatgen.evaluation.settings import GUIDANCE_MODES, PAPER_T_STARTS, EvaluationSettings

__all__ = ["EvaluationSettings", "GUIDANCE_MODES", "PAPER_T_STARTS", "evaluate"]
