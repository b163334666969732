"""Minimal, self-contained training loops of the DOSSampler score network and its guidance regressor.

Kept independent of dosmatgen/training so it can be ported onto the unified training engine later. Usage::

    python -m dosmatgen.dos_sampler.train network --config configs/dos_sampler/small.yaml --out runs/dossampler
    python -m dosmatgen.dos_sampler.train regressor --run runs/dossampler --config configs/dos_sampler/small.yaml

``network`` writes ``log.jsonl`` (train loss every ``log_every`` steps, validation loss every ``eval_every``),
``last.pt`` (resumable state) and ``best.pt`` (a DOSSampler checkpoint, lowest validation loss). It resumes from
``last.pt`` when present. ``regressor`` trains the property regressor on the frozen network and writes
``final.pt`` (best network + regressor + K distribution + thermoelectric reference).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from dosmatgen.dos.properties import derived_properties_batch
from dosmatgen.dos_sampler.checkpoint import DosSampler, load_dossampler, save_dossampler
from dosmatgen.dos_sampler.data import load_split
from dosmatgen.dos_sampler.expected_embedding import expected_embedding
from dosmatgen.dos_sampler.loss import lambda_denoising_loss, mask_tokens, sample_lambda
from dosmatgen.dos_sampler.network import DosScoreNetwork, NetworkConfig
from dosmatgen.dos_sampler.property_regressor import REGRESSED, PropertyRegressor, RegressorConfig
from dosmatgen.dos_sampler.tokens import tokenize
from dosmatgen.errors import DosmatgenError


@dataclass
class TrainConfig:
    store: str = "dosmatgen/resources/data/gpaw-v2.zarr"
    network: NetworkConfig = field(default_factory=NetworkConfig)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20000
    max_minutes: float = 40.0
    grad_clip: float = 1.0
    prior_prob: float = 0.3
    log_every: int = 25
    eval_every: int = 250
    seed: int = 0
    regressor_steps: int = 1500
    regressor_lr: float = 2e-3
    regressor_minutes: float = 6.0

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DosmatgenError(f"cannot read DOSSampler config {path}: {exc}") from None
        raw.update({k: v for k, v in overrides.items() if v is not None})
        net = raw.pop("network", {}) or {}
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise DosmatgenError(f"{path}: unknown DOSSampler config keys {sorted(unknown)}")
        return cls(network=NetworkConfig(**net), **raw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["network"] = self.network.to_dict()
        return d


def _tensors(dos: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    tok = tokenize(dos)
    return torch.as_tensor(tok.tokens), torch.as_tensor(np.log(tok.scale), dtype=torch.float32)


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def validation_loss(model: DosScoreNetwork, tokens: torch.Tensor, log_k: torch.Tensor, repeats: int = 2, batch: int = 64) -> float:
    """Lambda-denoising loss on a held-out set with fixed randomness (seed 1234), averaged over ``repeats`` passes."""
    model.eval()
    gen = torch.Generator().manual_seed(1234)
    total, count = 0.0, 0
    for _ in range(repeats):
        for s in range(0, tokens.shape[0], batch):
            t, k = tokens[s : s + batch], log_k[s : s + batch]
            total += float(lambda_denoising_loss(model, t, k, generator=gen)) * t.shape[0]
            count += t.shape[0]
    model.train()
    return total / count


def _append(log: Path, record: dict) -> None:
    with log.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def train_network(cfg: TrainConfig, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    train, val = load_split(cfg.store, "train"), load_split(cfg.store, "val")
    tr_tok, tr_k = _tensors(train.dos)
    va_tok, va_k = _tensors(val.dos)
    torch.manual_seed(cfg.seed)
    model = DosScoreNetwork(cfg.network)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, elapsed = 0, float("inf"), 0.0
    last = out / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best, elapsed = state["step"], state["best"], state["elapsed"]
        torch.set_rng_state(state["rng"])
    gen = torch.Generator().manual_seed(cfg.seed + step)
    log = out / "log.jsonl"
    start = time.monotonic() - elapsed
    k_values = np.exp(tr_k.numpy().astype(np.float64))
    model.train()
    running = []
    while step < cfg.max_steps and (time.monotonic() - start) < cfg.max_minutes * 60:
        idx = torch.randint(0, tr_tok.shape[0], (cfg.batch_size,), generator=gen)
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        loss = lambda_denoising_loss(model, tr_tok[idx], tr_k[idx], prior_prob=cfg.prior_prob, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        running.append(float(loss.detach()))
        if step % cfg.log_every == 0:
            _append(log, {"step": step, "train_loss": float(np.mean(running)), "lr": _lr(cfg, step), "seconds": time.monotonic() - start})
            running = []
        if step % cfg.eval_every == 0 or step >= cfg.max_steps:
            vl = validation_loss(model, va_tok, va_k)
            _append(log, {"step": step, "val_loss": vl, "seconds": time.monotonic() - start})
            if vl < best:
                best = vl
                save_dossampler(out / "best.pt", DosSampler(network=model, k_values=k_values, meta={"step": step, "val_loss": vl, "train_config": cfg.to_dict()}))
            torch.save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "best": best,
                 "elapsed": time.monotonic() - start, "rng": torch.get_rng_state()},
                last,
            )
    vl = validation_loss(model, va_tok, va_k)
    _append(log, {"step": step, "val_loss": vl, "seconds": time.monotonic() - start, "final": True})
    if vl < best:
        save_dossampler(out / "best.pt", DosSampler(network=model, k_values=k_values, meta={"step": step, "val_loss": vl, "train_config": cfg.to_dict()}))
    return out / "best.pt"


def _regressor_targets(dos: np.ndarray) -> np.ndarray:
    props = derived_properties_batch(dos)
    return np.stack([props[name] for name in REGRESSED], axis=1).astype(np.float32)


def regressor_inputs(model: DosScoreNetwork, tokens: torch.Tensor, log_k: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """p @ E for a randomly masked batch: one-hot at kept positions, the frozen network's softmax at masked ones."""
    with torch.no_grad():
        lam = sample_lambda(tokens.shape[0], gen)
        noised, _ = mask_tokens(tokens, lam, 0.0, gen)
        logits = model(noised, log_k, lam)
        return expected_embedding(model, noised, logits)


def fit_regressor(
    model: DosScoreNetwork, tokens: torch.Tensor, log_k: torch.Tensor, y: torch.Tensor, *, steps: int, lr: float,
    batch_size: int, seed: int = 0, on_step=None, deadline: float | None = None,
) -> PropertyRegressor:
    """Train a PropertyRegressor on the frozen ``model`` for targets ``y`` (n, 2) in REGRESSED order.

    ``on_step(step, regressor, loss)`` is called after every step (validation, logging); ``deadline`` is a
    time.monotonic() value after which training stops.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    mean, std = y.mean(0), y.std(0).clamp(min=1e-6)
    torch.manual_seed(seed)
    reg = PropertyRegressor(RegressorConfig(token_dim=model.cfg.token_dim, mean=mean.tolist(), std=std.tolist()))
    opt = torch.optim.AdamW(reg.parameters(), lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        if deadline is not None and time.monotonic() > deadline:
            break
        idx = torch.randint(0, tokens.shape[0], (batch_size,), generator=gen)
        x = regressor_inputs(model, tokens[idx], log_k[idx], gen)
        loss = ((reg(x, log_k[idx]) - (y[idx] - mean) / std) ** 2).mean()
        for g in opt.param_groups:
            g["lr"] = lr * (1 - step / steps) + 1e-5
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, reg, float(loss.detach()))
    return reg


def train_regressor(cfg: TrainConfig, run: str | Path, out_name: str = "final.pt") -> Path:
    """Train the guidance regressor on the frozen best network of ``run``; write ``run/out_name``."""
    run = Path(run)
    sampler = load_dossampler(run / "best.pt")
    model = sampler.network
    train, val = load_split(cfg.store, "train"), load_split(cfg.store, "val")
    tr_tok, tr_k = _tensors(train.dos)
    va_tok, va_k = _tensors(val.dos)
    y_tr, y_va = torch.as_tensor(_regressor_targets(train.dos)), torch.as_tensor(_regressor_targets(val.dos))
    log = run / "regressor_log.jsonl"
    best = {"score": float("inf"), "state": None}

    def validate(step: int, reg: PropertyRegressor, loss: float) -> None:
        if step % 100:
            return
        vgen = torch.Generator().manual_seed(99)
        with torch.no_grad():
            errs = [
                (reg.predict(regressor_inputs(model, va_tok[s : s + 64], va_k[s : s + 64], vgen), va_k[s : s + 64]) - y_va[s : s + 64]).abs()
                for s in range(0, va_tok.shape[0], 64)
            ]
        mae = torch.cat(errs).mean(0)
        _append(log, {"step": step, "train_mse_std_units": loss, **{f"val_mae_{n}": float(m) for n, m in zip(REGRESSED, mae)}})
        score = float((mae / reg.std).sum())
        if score < best["score"]:
            best["score"], best["state"] = score, {k: v.clone() for k, v in reg.state_dict().items()}

    reg = fit_regressor(
        model, tr_tok, tr_k, y_tr, steps=cfg.regressor_steps, lr=cfg.regressor_lr, batch_size=cfg.batch_size,
        seed=cfg.seed, on_step=validate, deadline=time.monotonic() + cfg.regressor_minutes * 60,
    )
    if best["state"] is not None:
        reg.load_state_dict(best["state"])
    sampler.regressor = reg
    train_k_gap = derived_properties_batch(train.dos)["band_gap"]
    sampler.meta = {**sampler.meta, "k_band_gap": train_k_gap.tolist()}
    return save_dossampler(run / out_name, sampler)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["network", "regressor"])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--time-conditioned", action="store_true")
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config, max_minutes=args.max_minutes)
    if args.time_conditioned:
        cfg.network = NetworkConfig(**{**cfg.network.to_dict(), "time_conditioned": True})
    torch.set_num_threads(1)
    if args.stage == "network":
        print(train_network(cfg, args.out))
    else:
        print(train_regressor(cfg, args.out))


if __name__ == "__main__":
    main()
