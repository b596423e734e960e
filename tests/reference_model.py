"""The original notebook's architecture, written the way the notebook writes it.

A baseline, not for training runs: a list of single-head modules, each with its own
key/query/value Linear without bias, a triangular mask and ``masked_fill``, outputs
concatenated and projected; a 4x ReLU feed-forward; pre-norm. The speed benchmark reports
wordgpt's throughput against it, and a test checks that the fused attention of
:mod:`wordgpt.model.gpt` computes the same function (see :func:`load_from_gpt`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from wordgpt.config import ModelConfig


class Head(nn.Module):
    def __init__(self, cfg: ModelConfig, hs: int):
        super().__init__()
        self.key = nn.Linear(cfg.n_embd, hs, bias=False)
        self.query = nn.Linear(cfg.n_embd, hs, bias=False)
        self.value = nn.Linear(cfg.n_embd, hs, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(cfg.block_size, cfg.block_size)))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        B, T, C = x.shape
        k, q, v = self.key(x), self.query(x), self.value(x)  # (B, T, hs)
        wei = q @ k.transpose(-2, -1) * k.size(-1) ** -0.5  # (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = self.dropout(F.softmax(wei, dim=-1))
        return wei @ v  # (B, T, hs)


class MultiHeadAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hs = cfg.n_embd // cfg.n_head
        self.heads = nn.ModuleList(Head(cfg, hs) for _ in range(cfg.n_head))
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C = cfg.n_embd
        self.net = nn.Sequential(
            nn.Linear(C, 4 * C), nn.ReLU(), nn.Linear(4 * C, C), nn.Dropout(cfg.dropout)
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.sa = MultiHeadAttention(cfg)
        self.ffwd = FeedForward(cfg)
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class ReferenceGPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding_table = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.position_embedding_table = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.token_embedding_table(idx) + self.position_embedding_table(
            torch.arange(T, device=idx.device)
        )
        logits = self.lm_head(self.ln_f(self.blocks(x)))  # (B, T, V)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(B * T, -1).float(), targets.reshape(-1))


@torch.no_grad()
def load_from_gpt(ref: ReferenceGPT, gpt) -> ReferenceGPT:
    """Copy a plain pre-norm :class:`wordgpt.model.gpt.GPT`'s weights (learned positions,
    softmax head, biases, no qkv bias) into ``ref``: fused qkv rows become per-head Linears."""
    cfg = gpt.cfg
    C, hs = cfg.n_embd, cfg.n_embd // cfg.n_head
    ref.token_embedding_table.weight.copy_(gpt.wte.weight)
    ref.position_embedding_table.weight.copy_(gpt.wpe.weight)
    for rb, gb in zip(ref.blocks, gpt.h, strict=True):
        wq, wk, wv = gb.attn.qkv.weight.split(C, dim=0)  # each (C, C), rows are heads
        for i, head in enumerate(rb.sa.heads):
            rows = slice(i * hs, (i + 1) * hs)
            head.query.weight.copy_(wq[rows])
            head.key.weight.copy_(wk[rows])
            head.value.weight.copy_(wv[rows])
        rb.sa.proj.load_state_dict(gb.attn.proj.state_dict())
        rb.ffwd.net[0].load_state_dict(gb.mlp.fc.state_dict())
        rb.ffwd.net[2].load_state_dict(gb.mlp.proj.state_dict())
        rb.ln1.load_state_dict(gb.ln_1.state_dict())
        rb.ln2.load_state_dict(gb.ln_2.state_dict())
    ref.ln_f.load_state_dict(gpt.ln_f.state_dict())
    ref.lm_head.load_state_dict(gpt.lm_head.state_dict())
    return ref
