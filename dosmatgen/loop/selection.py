"""The loop's DFT selection: the top K by DOS-match score plus E exploration picks.

Exploration picks come from the best ``explore_pool`` fraction of the scored candidates (those that passed the
filters) outside the top K, chosen by :func:`dosmatgen.loop.exploration.farthest_picks` on the conditioned
site's surrogate latent. The selection is written once into the run store (slots: the top K best first, then the
picks) with each slot's role in the manifest, so a resumed round sends the same candidates to DFT.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from dosmatgen.errors import StoreError
from dosmatgen.loop.exploration import farthest_picks, site_latents
from dosmatgen.runstore import RunStore
from dosmatgen.screen.stages import given_up_shards

TOP = "top"
EXPLORE = "explore"


def selection_roles(store: RunStore, target_id: str) -> list[dict[str, Any]]:
    """Per selected slot: {"slot", "row", "role", "score", "latent_distance"} as written by :class:`LoopSelector`."""
    info = store.manifest.done_info("select", target_id, 0)
    return list(info.get("slots", []))


class LoopSelector:
    """``select(store, target_id) -> rows`` for :func:`dosmatgen.screen.driver.run_screen`.

    ``predictor`` is the round's surrogate (a SurrogatePredictor) and ``train_latents`` the latents of every
    training-split site of the round's store; both are only needed when ``explore > 0``.
    """

    def __init__(self, top_k: int, explore: int, explore_pool: float, site: int, predictor=None,
                 train_latents: np.ndarray | None = None) -> None:
        self.top_k, self.explore, self.pool, self.site = int(top_k), int(explore), float(explore_pool), int(site)
        self.predictor, self.train_latents = predictor, train_latents

    def __call__(self, store: RunStore, target_id: str) -> np.ndarray:
        t = store.target(target_id)
        if store.manifest.is_done("select", target_id, 0):
            return t.selection()[0]
        missing = [s for s in t.pending("rank") if s not in given_up_shards(store, target_id)]
        if missing:
            raise StoreError(f"cannot select target {target_id!r}: rank shards {missing[:5]} are not done")
        scores = t.column("rank/score")
        scored = np.flatnonzero(np.isfinite(scores))
        order = scored[np.lexsort((scored, scores[scored]))]
        top = order[: self.top_k]
        slots = [{"row": int(r), "role": TOP, "score": float(scores[r]), "latent_distance": None} for r in top]
        rest = order[self.top_k :]
        pool = rest[: math.ceil(self.pool * order.size)] if self.explore else rest[:0]
        if pool.size:
            if self.predictor is None or self.train_latents is None:
                raise StoreError("exploration picks need the round's surrogate and its training latents")
            crystals = t.read_crystals("relax")
            pool = np.array([r for r in pool if crystals[int(r)] is not None and crystals[int(r)].num_atoms > self.site])
            if pool.size:
                lat = site_latents(self.predictor, [crystals[int(r)] for r in pool])
                picks, at = farthest_picks(np.stack([x[self.site] for x in lat]), self.train_latents, self.explore)
                slots += [{"row": int(pool[i]), "role": EXPLORE, "score": float(scores[pool[i]]), "latent_distance": d}
                          for i, d in zip(picks, at)]
        rows = np.array([s["row"] for s in slots], dtype=np.int64)
        t.write_selection(rows, np.array([s["score"] for s in slots]))
        for k, s in enumerate(slots):
            s["slot"] = k
        t.mark_done("select", 0, selected=int(rows.size), slots=slots)
        return rows


def train_site_latents(predictor, store, split: str = "train") -> np.ndarray:
    """(sites, H) surrogate latents of every site of ``split`` of a DatasetStore."""
    idx = store.split_indices(split)
    crystals = [store.crystal(int(i)) for i in idx]
    lat = site_latents(predictor, crystals)
    return np.concatenate(lat) if lat else np.zeros((0, predictor.model.config.hidden_dim))


def rows_by_role(slots: Sequence[dict[str, Any]], role: str) -> list[int]:
    return [int(s["row"]) for s in slots if s["role"] == role]
