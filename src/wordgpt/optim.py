"""The optimiser and its learning-rate schedule.

AdamW decays the Linear layers' matrices (the blocks and the output layer) and nothing else:
embeddings, biases and norms are left alone. The schedule is a linear warm-up, then cosine
(or warm-up, stable, then linear decay: ``wsd``) down to ``lr * min_lr_ratio``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: Linear weight matrices decayed; embeddings (a tied output layer is
    the embedding), biases and norms not."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linears = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if id(p) in linears and id(p) not in embeddings]
    rest = [p for p in params if id(p) not in {id(q) for q in decay}]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        fused=device.type in ("cuda", "cpu"),
    )


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Learning rate: linear warm-up over ``warmup_iters`` steps, then cosine (or stable then
    linear: ``wsd``) decay to ``lr * min_lr_ratio`` as ``progress`` goes from 0 to 1."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.decay == "wsd":
        start = 1.0 - cfg.decay_frac
        t = min(max((progress - start) / cfg.decay_frac, 0.0), 1.0)
        return cfg.lr - (cfg.lr - lo) * t
    w = min(cfg.warmup_iters / cfg.max_iters, 1.0)
    t = min(max((progress - w) / max(1.0 - w, 1e-9), 0.0), 1.0)
    return lo + 0.5 * (1.0 + math.cos(math.pi * t)) * (cfg.lr - lo)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
