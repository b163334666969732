"""Orb backend (orb-models 0.5.x; the DOSMatGen paper used Orb-v2).

Orb weights are NOT inside the wheel. :class:`OrbMLFF` loads a LOCAL checkpoint (``weights_path``); it
downloads from orb-models' default URL only when the caller passes ``allow_download=True`` (and is online).
Without either it raises :class:`~dosmatgen.errors.CheckpointError` explaining how to supply the weights.

Batched evaluation: one ``AtomGraphs`` per structure (orb's own featuriser), ``batch_graphs`` into one
graph and ONE ``model.predict`` call. Direct models (Orb-v2) return ``forces``/``stress`` from heads;
conservative models (Orb-v3 ``conservative``) return ``grad_forces``/``grad_stress``. Orb's stress is
Voigt (xx, yy, zz, yz, xz, xy) in eV/Å^3, ASE's sign convention.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.relax.mlff import MLFF, MLFFOutput

#: The Orb model used when none is named (the paper's).
DEFAULT_ORB_MODEL = "orb-v2"


def missing_weights_message(model_name: str, default_url: str | None) -> str:
    where = f" (orb-models' default: {default_url})" if default_url else ""
    return (
        f"Orb weights for {model_name!r} are not available offline. Download the checkpoint{where} on a machine "
        "with internet access and pass its path: Python get_mlff('orb', weights_path='/path/to/model.ckpt'); "
        "CLI --mlff orb --mlff-weights /path/to/model.ckpt; config mlff: {name: orb, weights_path: /path/to/model.ckpt}. "
        "Or allow orb-models to download it now (needs network): get_mlff('orb', allow_download=True) / --mlff-allow-download."
    )


def _default_url(loader: Any) -> str | None:
    import inspect

    try:
        return inspect.signature(loader).parameters["weights_path"].default
    except (KeyError, TypeError, ValueError):
        return None


class OrbMLFF(MLFF):
    """Orb force field.

    Args:
        model: orb-models pretrained name (``orb-v2``, ``orb-v3-conservative-inf-omat``, ...).
        weights_path: local ``.ckpt`` file for that model.
        allow_download: let orb-models fetch the default checkpoint when ``weights_path`` is not given.
        device: torch device (``"cpu"``).
        precision: orb-models precision string (``float32-high``, ``float32-highest``, ``float64``).
        module: an already built orb ``nn.Module`` (e.g. ``orb_v3_conservative_architecture()`` with random
            weights, for tests); ``weights_path`` is then ignored.
    """

    name = "orb"

    def __init__(
        self,
        model: str = DEFAULT_ORB_MODEL,
        weights_path: str | os.PathLike | None = None,
        allow_download: bool = False,
        device: str = "cpu",
        precision: str = "float32-high",
        module: Any = None,
    ) -> None:
        import orb_models

        self.model_name = model
        self.device = device
        if module is None:
            from orb_models.forcefield import pretrained

            loaders = pretrained.ORB_PRETRAINED_MODELS
            if model not in loaders:
                raise InvalidRecordError(f"unknown Orb model {model!r}; known: {', '.join(sorted(loaders))}")
            loader = loaders[model]
            if weights_path is not None:
                path = Path(weights_path).expanduser()
                if not path.is_file():
                    raise CheckpointError(f"Orb checkpoint {str(path)!r} does not exist. " + missing_weights_message(model, _default_url(loader)))
                module = loader(weights_path=str(path), device=device, precision=precision, compile=False)
                tag = path.name
            elif allow_download:
                module = loader(device=device, precision=precision, compile=False)
                tag = "default-download"
            else:
                raise CheckpointError(missing_weights_message(model, _default_url(loader)))
        else:
            tag = "user-module"
        self.module = module.eval()
        self.version = f"orb-models-{orb_models.__version__}/{model}/{tag}"
        n_embed = self._n_embeddings(self.module)
        self.supported_elements = frozenset(range(1, min(n_embed - 1, 118) + 1)) if n_embed else frozenset(range(1, 119))
        self._conservative = hasattr(self.module, "grad_forces_name")

    @staticmethod
    def _n_embeddings(module: Any) -> int | None:
        import torch

        for name, sub in module.named_modules():
            if name.endswith("atom_emb") or name.endswith("embeddings"):
                if isinstance(sub, torch.nn.Embedding):
                    return int(sub.num_embeddings)
                for child in sub.modules():
                    if isinstance(child, torch.nn.Embedding):
                        return int(child.num_embeddings)
        return None

    def compute(self, numbers, positions, cells) -> MLFFOutput:
        from ase import Atoms
        from ase.stress import voigt_6_to_full_3x3_stress
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs
        from orb_models.forcefield.base import batch_graphs

        n_atoms = [len(z) for z in numbers]
        graphs, good, errors = [], [], {}
        for i, (z, pos, cell) in enumerate(zip(numbers, positions, cells, strict=True)):
            try:
                atoms = Atoms(numbers=z, positions=pos, cell=cell, pbc=True)
                graphs.append(ase_atoms_to_atom_graphs(atoms, system_config=self.module.system_config, device=self.device))
                good.append(i)
            except Exception as exc:  # noqa: BLE001 - isolate the structure, keep the batch
                errors[i] = f"Orb featurisation failed: {type(exc).__name__}: {exc}"
        energy = np.full(len(n_atoms), np.nan)
        forces = [np.full((n, 3), np.nan) for n in n_atoms]
        stress = np.full((len(n_atoms), 3, 3), np.nan)
        if good:
            out = self.module.predict(batch_graphs(graphs))
            f_key = self.module.grad_forces_name if self._conservative else "forces"
            s_key = self.module.grad_stress_name if self._conservative else "stress"
            e = out["energy"].detach().double().cpu().numpy().reshape(-1)
            f = out[f_key].detach().double().cpu().numpy()
            s = out[s_key].detach().double().cpu().numpy().reshape(-1, 6)
            offsets = np.cumsum([0] + [n_atoms[i] for i in good])
            for k, i in enumerate(good):
                energy[i] = e[k]
                forces[i] = f[offsets[k] : offsets[k + 1]]
                stress[i] = voigt_6_to_full_3x3_stress(s[k])
        return MLFFOutput(energy, forces, stress, errors)
