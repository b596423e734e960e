"""The optimisers, their learning-rate schedule, and an average of the weights.

Parameters fall in four kinds, each its own group with its own learning rate:

- the blocks' matrices (qkv, attention and feed-forward projections): AdamW with weight
  decay, or Muon (``optimizer="muon"``: momentum orthogonalised by Newton-Schulz);
- the output layer's matrices (the softmax head, or the adaptive head's): AdamW with weight
  decay, learning rate x ``head_lr_scale``;
- embeddings (token and position; a tied output layer is the token embedding): AdamW without
  weight decay, learning rate x ``embed_lr_scale``;
- biases, norms and scalars: AdamW without weight decay.

The schedule is a linear warm-up, then cosine (or warm-up, stable, then linear decay:
``wsd``) down to ``lr * min_lr_ratio``, as fractions of the run's progress (steps, seconds or
passes, whichever ends it first); every group follows it in proportion.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from ..config import OptimConfig
from ..model.device import native_bf16


def parameter_kinds(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters by kind: hidden, head, embedding, other (each once)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    head = getattr(model, "lm_head", None)
    head_ids = {id(p) for p in head.parameters() if p.dim() >= 2} if head is not None else set()
    linears = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    kinds: dict[str, list[nn.Parameter]] = {"hidden": [], "head": [], "embedding": [], "other": []}
    for p in model.parameters():  # a tied tensor is listed once, under its first owner
        if not p.requires_grad:
            continue
        if id(p) in embeddings:
            kinds["embedding"].append(p)
        elif id(p) in head_ids:
            kinds["head"].append(p)
        elif id(p) in linears:
            kinds["hidden"].append(p)
        else:
            kinds["other"].append(p)
    return kinds


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: Linear weight matrices decayed; embeddings (a tied output layer is
    the embedding), biases, norms and scalars not."""
    k = parameter_kinds(model)
    return [
        {"params": k["hidden"] + k["head"], "weight_decay": weight_decay},
        {"params": k["embedding"] + k["other"], "weight_decay": 0.0},
    ]


class Optimizers:
    """The optimizers of one model, stepped together (AdamW alone, or Muon and AdamW)."""

    def __init__(self, opts: dict[str, torch.optim.Optimizer]):
        self.opts = opts

    @property
    def param_groups(self) -> list[dict]:
        return [g for o in self.opts.values() for g in o.param_groups]

    def unscale_(self, scaler) -> None:
        for o in self.opts.values():
            scaler.unscale_(o)

    def step(self, scaler) -> None:
        for o in self.opts.values():
            scaler.step(o)
        scaler.update()

    def zero_grad(self) -> None:
        for o in self.opts.values():
            o.zero_grad(set_to_none=True)

    def state_dict(self) -> dict:
        return {name: o.state_dict() for name, o in self.opts.items()}

    def load_state_dict(self, d: dict) -> None:
        if "state" in d and "param_groups" in d:  # a checkpoint from before Muon: AdamW alone
            d = {"adamw": d}
        for name, o in self.opts.items():
            o.load_state_dict(d[name])


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> Optimizers:
    k = parameter_kinds(model)
    fused = device.type in ("cuda", "cpu")
    adamw_groups = [
        {
            "params": k["head"],
            "weight_decay": cfg.weight_decay,
            "base_lr": cfg.lr * cfg.head_lr_scale,
        },
        {"params": k["embedding"], "weight_decay": 0.0, "base_lr": cfg.lr * cfg.embed_lr_scale},
        {"params": k["other"], "weight_decay": 0.0, "base_lr": cfg.lr},
    ]
    opts: dict[str, torch.optim.Optimizer] = {}
    if cfg.optimizer == "muon" and k["hidden"]:
        opts["muon"] = Muon(
            [{"params": k["hidden"], "base_lr": cfg.muon_lr or cfg.lr}],
            lr=cfg.muon_lr or cfg.lr,
            weight_decay=cfg.weight_decay,
            momentum=cfg.muon_momentum,
            adjust_lr_fn="match_rms_adamw",
            ns_dtype=torch.bfloat16 if device.type == "cuda" or native_bf16() else torch.float32,
        )
    else:
        adamw_groups.insert(
            0, {"params": k["hidden"], "weight_decay": cfg.weight_decay, "base_lr": cfg.lr}
        )
    groups = [g for g in adamw_groups if g["params"]]
    for g in groups:
        g["lr"] = g["base_lr"]
    opts["adamw"] = torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), fused=fused)
    return Optimizers(opts)


class Muon(torch.optim.Muon):
    """torch's Muon, its Newton-Schulz iteration in ``ns_dtype``. torch runs it in bfloat16,
    which a CPU without native bfloat16 (most laptops: AVX2 only) emulates about 50 times
    slower than float32 (one step over matrices of the `char` recipe's size: 7.4 s against
    0.14 s), so :func:`build_optimizer` asks for float32 there. Its state is torch's (a momentum
    buffer per matrix), so a checkpoint resumes under either."""

    def __init__(self, params, *, ns_dtype: torch.dtype = torch.bfloat16, **kw):
        super().__init__(params, **kw)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        if self.ns_dtype == torch.bfloat16:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta = group["lr"], group["momentum"]
            for p in (p for p in group["params"] if p.grad is not None):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - beta)
                update = p.grad.lerp(buf, beta) if group["nesterov"] else buf
                update = orthogonalised(update, group["ns_coefficients"], group["ns_steps"],
                                        group["eps"], self.ns_dtype)  # fmt: skip
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-lr * lr_ratio(group["adjust_lr_fn"], p.shape))
        return loss


def orthogonalised(g: torch.Tensor, coefficients: tuple[float, float, float], steps: int,
                   eps: float, dtype: torch.dtype) -> torch.Tensor:  # fmt: skip
    """Muon's quintic Newton-Schulz iteration toward the nearest semi-orthogonal matrix
    (singular values near 1) of ``g`` (out, in), computed in ``dtype``: torch's own, as
    ``torch.optim.Muon`` computes it in bfloat16."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    x = x.T if tall else x
    x = x / x.norm().clamp(min=eps)  # the spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def lr_ratio(adjust: str | None, shape: torch.Size) -> float:
    """The factor ``torch.optim.Muon`` scales a matrix's step by (its ``adjust_lr_fn``)."""
    rows, cols = shape[:2]
    if adjust == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols)) if adjust in (None, "original") else 1.0


def lr_at(progress: float, cfg: OptimConfig, branch: tuple[float, float] | None = None) -> float:
    """The learning rate at ``progress`` (0 to 1) of the run: a linear warm-up over the
    first ``warmup`` of it, then cosine (or stable then linear: ``wsd``) decay to ``lr *
    min_lr_ratio`` at its end. A WSD decay branched off at a plateau runs over ``branch`` =
    (start, end) progress instead."""
    if progress < cfg.warmup:
        return cfg.lr * progress / cfg.warmup
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.decay == "wsd":
        start, end = branch or (1.0 - cfg.decay_frac, 1.0)
        t = min(max((progress - start) / max(end - start, 1e-9), 0.0), 1.0)
        return cfg.lr - (cfg.lr - lo) * t
    t = min(max((progress - cfg.warmup) / max(1.0 - cfg.warmup, 1e-9), 0.0), 1.0)
    return lo + 0.5 * (1.0 + math.cos(math.pi * t)) * (cfg.lr - lo)


def set_lr(opt: Optimizers, lr: float, cfg: OptimConfig, progress: float) -> None:
    """Every group at its base rate times the schedule's fraction; Muon's momentum rises
    linearly from 0.85 over the first ``muon_warmup`` of the run."""
    factor = lr / cfg.lr
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor
    if "muon" in opt.opts:
        t = min(progress / cfg.muon_warmup, 1.0) if cfg.muon_warmup else 1.0
        for g in opt.opts["muon"].param_groups:
            g["momentum"] = 0.85 + t * (cfg.muon_momentum - 0.85)


class EMA:
    """An exponential moving average of a model's weights, for evaluation and sampling.

    After step t: ``ema = d * ema + (1 - d) * w`` with ``d = min(decay, (1 + t) / (10 + t))``,
    so the first steps do not drag the average towards the random start."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def rate(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.rate()
        ema, live = list(self.model.parameters()), list(model.parameters())
        torch._foreach_lerp_(ema, live, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.updates += 1


def plateau_branch(cfg: OptimConfig, evals_since_best: int, progress: float):
    """Where a WSD decay branches off when the val loss stopped improving: (start, end) in
    progress, the decay lasting decay_frac of the run so far; None when it is not time (no
    plateau yet, or the planned decay has begun anyway)."""
    if cfg.decay_on_plateau is None or evals_since_best < cfg.decay_on_plateau:
        return None
    if progress >= 1.0 - cfg.decay_frac:
        return None
    return progress, min(1.0, progress / (1.0 - cfg.decay_frac))
