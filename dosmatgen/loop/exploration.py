"""Exploration picks: candidates far from the training data in the DOS surrogate's latent space.

The latent of a site is the surrogate's per-atom hidden vector just before its output head (after the last
CSPNet layer and LayerNorm). A candidate whose conditioned site lies far from every training site's latent is
one the surrogate has seen nothing like, so its DOS ranking is the least trustworthy and its DFT result teaches
the models the most. Picks are made greedily (farthest-point sampling): each next pick maximises its distance to
the training latents and to the picks made so far, so exploration picks are also diverse among themselves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dosmatgen.crystal import Crystal


def site_latents(predictor, crystals: Sequence[Crystal]) -> list[np.ndarray]:
    """One (n_atoms, H) array of surrogate latents per crystal (``predictor``: a SurrogatePredictor of a site
    surrogate)."""
    captured: list[np.ndarray] = []
    hook = predictor.model.head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().double().cpu().numpy()))
    try:
        predictor.predict_scaled(list(crystals))
    finally:
        hook.remove()
    flat = np.concatenate(captured) if captured else np.zeros((0, predictor.model.config.hidden_dim))
    counts = np.array([c.num_atoms for c in crystals], dtype=np.int64)
    if flat.shape[0] != counts.sum():
        raise RuntimeError(f"captured {flat.shape[0]} site latents for {counts.sum()} atoms")
    edges = np.concatenate([[0], np.cumsum(counts)])
    return [flat[edges[i] : edges[i + 1]] for i in range(len(crystals))]


def nearest_distance(points: np.ndarray, reference: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(n,) Euclidean distance of each point to its nearest reference point (inf when there is none)."""
    out = np.full(points.shape[0], np.inf)
    for a in range(0, reference.shape[0], chunk):
        ref = reference[a : a + chunk]
        d2 = (points**2).sum(1)[:, None] - 2.0 * points @ ref.T + (ref**2).sum(1)[None, :]
        out = np.minimum(out, np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
    return out


def farthest_picks(latents: np.ndarray, train_latents: np.ndarray, count: int) -> tuple[list[int], list[float]]:
    """Greedy farthest-point picks among ``latents`` (n, H): indices and the distance each had when picked (to
    the nearest training latent or earlier pick). Ties go to the lower index, so picks are deterministic."""
    if count <= 0 or latents.shape[0] == 0:
        return [], []
    dist = nearest_distance(latents, train_latents)
    picks: list[int] = []
    at: list[float] = []
    for _ in range(min(count, latents.shape[0])):
        masked = dist.copy()
        masked[picks] = -np.inf
        i = int(np.argmax(masked))
        picks.append(i)
        at.append(float(dist[i]))
        dist = np.minimum(dist, np.linalg.norm(latents - latents[i][None], axis=1))
    return picks, at
