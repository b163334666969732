"""The joint denoising loss L = λ_A L_A + λ_X L_X + λ_L L_L (paper Eq. 1 and Appendix A)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """λ_A (atom types), λ_X (coordinates), λ_L (lattice); the paper uses 20 / 1 / 1."""

    types: float = 20.0
    coords: float = 1.0
    lattice: float = 1.0


@dataclass(frozen=True)
class LossTerms:
    """Scalar tensors: the weighted ``total`` and the unweighted per-field mean squared errors."""

    total: torch.Tensor
    lattice: torch.Tensor
    coords: torch.Tensor
    types: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name).detach()) for f in fields(self)}


def joint_loss(
    pred_lattice_eps: torch.Tensor,
    pred_coord_score: torch.Tensor,
    pred_type_eps: torch.Tensor,
    target_lattice_eps: torch.Tensor,
    target_coord_score: torch.Tensor,
    target_type_eps: torch.Tensor,
    weights: LossWeights,
    atom_scale: float = 1.0,
) -> LossTerms:
    """Mean squared errors over all entries of each field (as in DiffCSP; the ‖·‖² of Appendix A divided by the
    number of entries). The coordinate target is already normalised by sqrt(σ_norm(t)), which is the λ_t
    weighting of Eq. A9 applied to target and prediction alike.

    ``atom_scale`` multiplies the two per-atom terms in ``total`` (not in the reported ``coords``/``types``): data
    parallel training sets it to world × local atoms / global atoms, so that the average of the workers' gradients
    is the gradient of the per-atom mean over the WHOLE global batch, as one process would compute it."""
    l_lat = F.mse_loss(pred_lattice_eps, target_lattice_eps)
    l_x = F.mse_loss(pred_coord_score, target_coord_score)
    l_a = F.mse_loss(pred_type_eps, target_type_eps)
    total = weights.lattice * l_lat + atom_scale * (weights.coords * l_x + weights.types * l_a)
    return LossTerms(total=total, lattice=l_lat, coords=l_x, types=l_a)
