"""The GPT: a decoder-only transformer, and the KV cache its attention can read and write.

Shape letters used throughout:
    B batch size, T new positions, S positions attended to (cached + new),
    C channels (n_embd), nh heads, hs head size (C // nh), V vocabulary size.

The model knows nothing about files, tokenizers or devices beyond its parameters. The
generation loop that drives the cache is :mod:`wordgpt.model.sampling`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ModelConfig

ADAPTIVE_DIV = 4.0
"""Each adaptive cluster's projection is this many times narrower than the previous one."""


class KVCache:
    """Keys and values of every layer for positions ``[0, len)``, preallocated to block size."""

    def __init__(self, cfg: ModelConfig, batch_size: int, device, dtype):
        hs = cfg.n_embd // cfg.n_head
        shape = (batch_size, cfg.n_head, cfg.block_size, hs)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, pos: int):
        """Store ``k, v`` (B, nh, T, hs) at ``pos`` and return all keys and values so far."""
        T = k.size(2)
        self.k[layer][:, :, pos : pos + T] = k
        self.v[layer][:, :, pos : pos + T] = v
        return self.k[layer][:, :, : pos + T], self.v[layer][:, :, : pos + T]  # (B, nh, S, hs)


def rope_tables(block_size: int, hs: int, base: float = 10000.0) -> tuple[torch.Tensor, ...]:
    """cos and sin of the rotary angles, each (block_size, hs/2)."""
    inv_freq = 1.0 / base ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` (B, nh, T, hs) by position-dependent angles (T, hs/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.type_as(x)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention, all heads in one fused qkv projection and one SDPA call.

    Options: ``qk_norm`` normalises each head's queries and keys (RMS norm, no weight) before
    the rotation; ``value_residual`` mixes this layer's values with the first layer's,
    ``v = lam * v + (1 - lam) * v1``, with a learned ``lam`` per layer (Zhou et al. 2024)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.n_head = cfg.n_head
        self.attn_dropout = cfg.attn_dropout
        self.qk_norm = cfg.qk_norm
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj_drop = nn.Dropout(cfg.dropout)
        self.value_lambda = (
            nn.Parameter(torch.tensor(0.5)) if cfg.value_residual and layer > 0 else None
        )

    def forward(
        self, x, rope=None, cache: KVCache | None = None, layer: int = 0, pos: int = 0, v1=None
    ):
        """``x`` (B, T, C) at positions ``pos..``; ``v1`` the first layer's values (B, nh, T, hs).
        Returns the output (B, T, C) and this layer's values before mixing."""
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v_own = v
        if self.value_lambda is not None and v1 is not None:
            v = self.value_lambda * v + (1 - self.value_lambda) * v1  # (B, nh, T, hs)
        if self.qk_norm:
            q, k = F.rms_norm(q, (hs,)), F.rms_norm(k, (hs,))
        if rope is not None:
            cos, sin = rope[0][pos : pos + T], rope[1][pos : pos + T]  # (T, hs/2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v, pos)  # (B, nh, S, hs)
        S = k.size(2)
        p = self.attn_dropout if self.training else 0.0
        if S == T:  # no past: the plain causal mask
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new token sees every cached position
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # new token t (at pos + t) sees positions <= pos + t
            mask = (
                torch.arange(S, device=x.device) <= pos + torch.arange(T, device=x.device)[:, None]
            )
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj_drop(self.proj(y)), v_own


class MLP(nn.Module):
    """The position-wise feed-forward network: Linear to 4C, ReLU (or ReLU squared), back to C."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)
        self.squared = cfg.mlp == "relu2"

    def forward(self, x):
        h = F.relu(self.fc(x))  # (B, T, 4C)
        if self.squared:
            h = h.square()
        return self.drop(self.proj(h))  # (B, T, C)


class Block(nn.Module):
    """Attention then feed-forward, each with a residual; LayerNorm before (pre) or after (post)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, rope=None, cache=None, layer=0, pos=0, v1=None):
        """(B, T, C) to (B, T, C), and the attention's values (for the value residual)."""
        if self.pre:
            a, v = self.attn(self.ln_1(x), rope, cache, layer, pos, v1)
            x = x + a
            x = x + self.mlp(self.ln_2(x))
        else:
            a, v = self.attn(x, rope, cache, layer, pos, v1)
            x = self.ln_1(x + a)
            x = self.ln_2(x + self.mlp(x))
        return x, v


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError("vocab_size must be set (>= 2)")
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        if cfg.head == "adaptive" and cfg.adaptive_cutoffs():
            self.lm_head = nn.AdaptiveLogSoftmaxWithLoss(
                cfg.n_embd, cfg.vocab_size, cfg.adaptive_cutoffs(), div_value=ADAPTIVE_DIV
            )
        else:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=cfg.head_bias)
            if cfg.tie_weights:
                self.lm_head.weight = self.wte.weight
        if cfg.pos == "rope":
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Initialise every tensor:

        - wte, wpe, and all Linear weights (qkv, mlp.fc, the head or the adaptive head's
          projections): normal, std 0.02;
        - residual projections (attn.proj, mlp.proj): normal, std 0.02 / sqrt(2 * n_layer),
          so the residual stream's variance does not grow with depth (GPT-2); or zero with
          ``zero_init_proj``, so every block starts as the identity (modded-nanoGPT);
        - every bias: zero; LayerNorm weights: one; value-residual mixes: 0.5.
        A tied head shares wte, so it is initialised once, as wte.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear | nn.LayerNorm) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm) and m.weight is not None:
                nn.init.ones_(m.weight)
        for block in self.h:
            for proj in (block.attn.proj, block.mlp.proj):
                if self.cfg.zero_init_proj:
                    nn.init.zeros_(proj.weight)
                else:
                    nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.cfg.n_layer))
            if block.attn.value_lambda is not None:
                nn.init.constant_(block.attn.value_lambda, 0.5)

    def num_params(self) -> int:
        """Parameters counted once (a tied head is not counted twice)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int) -> KVCache:
        p = self.wte.weight
        return KVCache(self.cfg, batch_size, p.device, p.dtype)

    def forward(
        self, idx, targets=None, cache: KVCache | None = None, pos: int = 0, reduction: str = "mean"
    ):
        """Logits (B, T, V) for token ids ``idx`` (B, T) at positions ``pos .. pos+T-1``;
        with ``targets`` (B, T), the cross-entropy loss instead (``reduction`` as in
        ``F.cross_entropy``). With the adaptive head, "logits" are log-probabilities."""
        B, T = idx.shape
        if pos + T > self.cfg.block_size:
            raise ValueError(
                f"positions {pos}..{pos + T - 1} exceed block_size {self.cfg.block_size}"
            )
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(pos, pos + T, device=idx.device))  # (B, T, C)
        x = self.drop(x)
        rope = (self.rope_cos, self.rope_sin) if self.cfg.pos == "rope" else None
        v1 = None
        for i, block in enumerate(self.h):
            x, v = block(x, rope, cache, i, pos, v1)  # (B, T, C)
            v1 = v if i == 0 else v1  # the first layer's values, for the value residual
        x = self.ln_f(x)  # (B, T, C)
        if targets is None:
            return self.logits(x)
        return self.loss(x, targets, reduction)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) hidden states to (B, T, V) logits."""
        if isinstance(self.lm_head, nn.AdaptiveLogSoftmaxWithLoss):
            B, T, C = x.shape
            with _fp32(x):
                return self.lm_head.log_prob(x.reshape(B * T, C).float()).view(B, T, -1)
        return self.softcap(self.lm_head(x))

    def softcap(self, logits: torch.Tensor) -> torch.Tensor:
        """``cap * tanh(logits / cap)``: logits kept within (-cap, cap) (Gemma 2)."""
        cap = self.cfg.logit_softcap
        return logits if cap is None else cap * torch.tanh(logits.float() / cap)

    def loss(self, x: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"):
        C = x.size(-1)
        if isinstance(self.lm_head, nn.AdaptiveLogSoftmaxWithLoss):
            with _fp32(x):
                nll = -self.lm_head(x.reshape(-1, C).float(), targets.reshape(-1)).output
            if reduction == "none":
                return nll
            return nll.sum() if reduction == "sum" else nll.mean()
        logits = self.softcap(self.lm_head(x)).float()  # (B, T, V)
        return F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction
        )


def _fp32(x: torch.Tensor):
    """No autocast: the adaptive head mixes dtypes under it, so it runs in fp32."""
    return torch.autocast(x.device.type, enabled=False)


def estimate_params(cfg: ModelConfig) -> int:
    """The parameter count of ``GPT(cfg)`` without building it (to refuse a model that cannot
    fit before allocating it)."""
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    per_block = 12 * C * C + (13 * C if cfg.bias else 2 * C)
    n = L * per_block + V * C + (2 * C if cfg.bias else C)
    n += L - 1 if cfg.value_residual else 0
    if cfg.pos == "learned":
        n += cfg.block_size * C
    if cfg.head == "adaptive" and cfg.adaptive_cutoffs():
        cut = [*cfg.adaptive_cutoffs(), V]
        n += C * (cut[0] + len(cut) - 1)  # the head: frequent tokens and one row per cluster
        for i in range(len(cut) - 1):  # each cluster: C -> h -> its tokens
            h = int(C // ADAPTIVE_DIV ** (i + 1))
            n += C * h + h * (cut[i + 1] - cut[i])
    else:
        n += (0 if cfg.tie_weights else V * C) + (V if cfg.head_bias else 0)
    return n


def estimate_flops(cfg: ModelConfig) -> float:
    """Training FLOPs per token (forward and backward) of ``GPT(cfg)``, as nanoGPT's
    ``estimate_mfu`` and the PaLM paper count them: 6 per weight of every matrix a token
    passes through (the blocks' Linear layers and the output layer), plus
    12 * n_layer * n_embd * block_size for attention's scores and weighted sum. Embedding
    lookups are no matrix products and are left out; so are the adaptive head's tail
    clusters, which a token passes through only when it is rare."""
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    blocks = L * 12 * C * C  # qkv 3C^2, proj C^2, mlp 8C^2
    if cfg.head == "adaptive" and cfg.adaptive_cutoffs():
        cut = cfg.adaptive_cutoffs()
        head = C * (cut[0] + len(cut))  # the shortlist and one row per cluster
    else:
        head = V * C
    return 6.0 * (blocks + head) + 12.0 * L * C * cfg.block_size
