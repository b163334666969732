"""Forward DOS surrogate: a time-independent CSPNet that predicts the DOS of a clean crystal.

* :mod:`~dosmatgen.surrogate.config` — model and training configuration.
* :mod:`~dosmatgen.surrogate.model` — :class:`DOSSurrogate` (site DOS per atom, or total DOS per crystal).
* :mod:`~dosmatgen.surrogate.baselines` — per-bin training mean and per-element mean predictors.
* :mod:`~dosmatgen.surrogate.train` — training on a dataset store (L1 on scaled DOS).
* :mod:`~dosmatgen.surrogate.checkpoint` — save/load (``torch.load(weights_only=True)``).
* :mod:`~dosmatgen.surrogate.predict` — :class:`SurrogatePredictor`: crystals -> unscaled DOS.
* :mod:`~dosmatgen.surrogate.evaluate` — intrinsic test MAE(ŷ, y) against the baselines.
"""

from dosmatgen.surrogate.config import SurrogateConfig, SurrogateTrainConfig
from dosmatgen.surrogate.model import DOSSurrogate

__all__ = ["SurrogateConfig", "SurrogateTrainConfig", "DOSSurrogate"]
