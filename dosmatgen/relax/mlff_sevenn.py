"""SevenNet backend (optional extra ``sevenn``): pretrained SevenNet-0 weights ship inside the ``sevenn`` wheel,
so it works offline like CHGNet.

Batched evaluation: one SevenNet ``AtomGraphData`` per structure (SevenNet's own graph builder, the model's
cutoff), collated into one torch_geometric ``Batch`` and ONE forward pass of the model in batch mode. SevenNet
computes forces and stress inside the model (autograd with respect to positions and strain). Its raw stress is
Voigt (xx, yy, zz, xy, yz, zx) with the opposite sign to ASE's; we return ASE's sign convention as 3x3 in
eV/Å^3, which is what ``SevenNetCalculator`` reports (``tests/test_relax_sevenn.py`` compares both).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from dosmatgen.errors import CheckpointError, InvalidRecordError
from dosmatgen.relax.mlff import MLFF, MLFFOutput

#: The SevenNet model used when none is named (weights inside the sevenn wheel).
DEFAULT_SEVENN_MODEL = "7net-0"


def voigt_to_matrix(v: np.ndarray) -> np.ndarray:
    """(B, 6) ASE Voigt (xx, yy, zz, yz, xz, xy) -> (B, 3, 3) symmetric."""
    xx, yy, zz, yz, xz, xy = (v[:, k] for k in range(6))
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], axis=1)


class SevenNetMLFF(MLFF):
    """SevenNet force field.

    Args:
        model: a SevenNet pretrained name (``7net-0``, default, ships in the wheel; larger ones such as
            ``7net-mf-ompa`` are downloaded by sevenn and need ``allow_download=True``), or a path to a local
            SevenNet checkpoint (``.pth``).
        modal: the fidelity of a multi-fidelity model (e.g. ``mpa`` for ``7net-mf-ompa``).
        device: torch device (``"cpu"``).
        allow_download: let sevenn fetch weights that are not in the wheel (needs network).
    """

    name = "sevenn"

    def __init__(self, model: str | os.PathLike = DEFAULT_SEVENN_MODEL, modal: str | None = None, device: str = "cpu",
                 allow_download: bool = False) -> None:
        try:
            import sevenn
            import sevenn._keys as KEY
            import sevenn.util as util
        except ImportError as exc:
            raise InvalidRecordError(f"--mlff sevenn needs the optional extra: pip install 'dosmatgen[sevenn]' ({exc})") from None
        import torch

        self._KEY = KEY
        name = str(model)
        if os.path.sep in name or name.endswith((".pth", ".pt")):
            if not os.path.isfile(name):
                raise CheckpointError(f"SevenNet checkpoint {name!r} does not exist")
        elif not allow_download and not _bundled_in_wheel(name):
            raise CheckpointError(
                f"SevenNet weights for {name!r} are not on this machine (not inside the sevenn wheel, not in "
                "~/.cache/sevennet) and downloading was not allowed. "
                f"Use the bundled '{DEFAULT_SEVENN_MODEL}', pass a local checkpoint path (--mlff-model /path/to/model.pth), "
                "or allow the download (needs network): --mlff-allow-download / get_mlff('sevenn', allow_download=True)."
            )
        try:
            checkpoint = util.load_checkpoint(name)
        except Exception as exc:  # noqa: BLE001 - unknown names, corrupt files, failed downloads
            raise CheckpointError(f"could not load SevenNet model {name!r}: {type(exc).__name__}: {exc}") from None
        net = checkpoint.build_model()
        net.set_is_batch_data(True)
        self.model = net.to(device).eval()
        self.device = torch.device(device)
        self.cutoff = float(checkpoint.config[KEY.CUTOFF])
        self.modal = modal
        if self.model.modal_map and modal not in self.model.modal_map:
            raise InvalidRecordError(f"SevenNet model {name!r} needs modal= one of {sorted(self.model.modal_map)}")
        self.supported_elements = frozenset(int(z) for z in checkpoint.config[KEY.TYPE_MAP])
        self.version = f"sevenn-{sevenn.__version__}/{os.path.basename(name)}" + (f"/{modal}" if modal else "")

    def _graph(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray):
        from ase import Atoms
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        atoms = Atoms(numbers=np.asarray(numbers), positions=np.asarray(positions, float), cell=np.asarray(cell, float), pbc=True)
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))
        if data[self._KEY.EDGE_IDX].shape[1] == 0:
            raise ValueError(f"no atom pair within the {self.cutoff} A cutoff")
        if self.modal:
            data[self._KEY.DATA_MODALITY] = self.modal
        return data

    def compute(self, numbers: Sequence[np.ndarray], positions: Sequence[np.ndarray], cells: Sequence[np.ndarray]) -> MLFFOutput:
        from torch_geometric.data import Batch

        KEY = self._KEY
        b = len(numbers)
        energy = np.full(b, np.nan)
        forces = [np.full((len(z), 3), np.nan) for z in numbers]
        stress = np.full((b, 3, 3), np.nan)
        errors: dict[int, str] = {}
        graphs, index = [], []
        for i, (z, pos, cell) in enumerate(zip(numbers, positions, cells, strict=True)):
            try:
                graphs.append(self._graph(z, pos, cell))
                index.append(i)
            except Exception as exc:  # noqa: BLE001 - one bad structure must not lose the batch
                errors[i] = f"SevenNet graph construction failed: {type(exc).__name__}: {exc}"
        if graphs:
            batch = Batch.from_data_list(graphs).to(self.device)
            out: Any = self.model(batch)
            e = out[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            f = out[KEY.PRED_FORCE].detach().cpu().numpy()
            s = -out[KEY.PRED_STRESS].detach().cpu().numpy()[:, [0, 1, 2, 4, 5, 3]]
            s3 = voigt_to_matrix(s)
            offsets = np.cumsum([0] + [len(numbers[i]) for i in index])
            for k, i in enumerate(index):
                energy[i] = e[k]
                forces[i] = f[offsets[k]:offsets[k + 1]].astype(float)
                stress[i] = s3[k]
        return MLFFOutput(energy, forces, stress, errors)


class _DownloadRefused(Exception):
    pass


def _bundled_in_wheel(name: str) -> bool:
    """Whether sevenn resolves the pretrained ``name`` to a file already on disk, WITHOUT letting it download
    (sevenn's resolver downloads missing weights; its download function is swapped for one that refuses,
    for the duration of the lookup)."""
    import sevenn.util as util

    def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise _DownloadRefused(name)

    original = util.download_checkpoint
    util.download_checkpoint = refuse
    try:
        path = util.pretrained_name_to_path(name)
    except Exception:  # noqa: BLE001 - unknown name, or a name sevenn would have to download
        return False
    finally:
        util.download_checkpoint = original
    return bool(path) and os.path.isfile(str(path))
