"""The GPT mixed with its n-gram partner, token by token: ``p = w * p_gpt + (1 - w) * p_kn``.

A run with a partner (``train --ngram N``, 4 in the word recipes) mixes the two at evaluation
and sampling. Its GPT trains on all but the end of the training split (the held-out policy of
:mod:`wordgpt.training.holdout`); once it is trained, the weight ``w`` is fitted on that slice
(the n-gram model counting the rest), so neither model has seen the tokens it is fitted on,
and never on val. ``RUN/partner.json`` keeps the order and the weight
(:mod:`wordgpt.runs.members` reads it back). Adaptive evaluation mixes with a weight that
learns as it reads (:func:`online_mixed_nll`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .ngram import READ_CHUNK, KneserNey, ReadingCounts


def fit_weight(gpt_nll: np.ndarray, kn_prob: np.ndarray) -> float:
    """The weight of the GPT in the mixture that gives the lowest cross-entropy on these
    tokens (their GPT nats and n-gram probabilities): a grid, then a finer one around it."""

    def loss(w: float) -> float:
        return float(-np.log(w * np.exp(-gpt_nll) + (1 - w) * kn_prob).mean())

    grid = np.linspace(0.05, 0.99, 48)
    best = grid[int(np.argmin([loss(w) for w in grid]))]
    fine = np.linspace(max(best - 0.02, 0.01), min(best + 0.02, 0.999), 41)
    return float(fine[int(np.argmin([loss(w) for w in fine]))])


def mixed_nll(gpt_nll: np.ndarray, kn_prob: np.ndarray, weight: float) -> np.ndarray:
    """The mixture's nats per token."""
    return -np.log(weight * np.exp(-gpt_nll) + (1 - weight) * kn_prob)


class FollowTheLeader:
    """The GPT's weight in its mixture with the partner, learnt as the text is read: for
    each token, the weight of a grid that did best on the tokens before it (the ``prior``'s
    before any), as a compressor's mixer learns; a token's weight never depends on it or on
    anything after it."""

    GRID = np.linspace(0.02, 0.98, 49)

    def __init__(self, prior: float) -> None:
        self.lead = np.abs(self.GRID - prior) * 1e-6  # each weight's loss so far

    def read(self, gpt_nll: np.ndarray, kn_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The weight of each of the next tokens (their GPT nats and partner probabilities,
        in order) and the mixture's nats for each; then it has read them."""
        g, k = gpt_nll[None], kn_prob[None]
        loss = -np.log(self.GRID[:, None] * np.exp(-g) + (1 - self.GRID[:, None]) * k)
        before = self.lead[:, None] + np.cumsum(loss, axis=1) - loss
        best = np.argmin(before, axis=0)
        if loss.shape[1]:
            self.lead = before[:, -1] + loss[:, -1]
        return self.GRID[best], loss[best, np.arange(loss.shape[1])]


def online_mixed_nll(
    gpt_nll: np.ndarray, kn_prob: np.ndarray, prior: float, chunk: int = 65536
) -> np.ndarray:
    """The mixture's nats per token when each token is mixed with the weight
    :class:`FollowTheLeader` gives it."""
    leader = FollowTheLeader(prior)
    out = np.empty(len(gpt_nll))
    for at in range(0, len(gpt_nll), chunk):
        out[at : at + chunk] = leader.read(gpt_nll[at : at + chunk], kn_prob[at : at + chunk])[1]
    return out


class PartnerReading:
    """The GPT's whole next-token distributions over ``tokens`` mixed with its ``partner``'s,
    in order (:meth:`mix`): with the run's weight and the model of its training tokens
    (static), or, given ``train`` (reading), with a model that counts the text as it reads it
    (:class:`.ngram.ReadingCounts`) and a weight that follows the leader: for each token the
    mixture adaptive evaluation scores."""

    def __init__(self, partner: Partner, tokens: np.ndarray, train: np.ndarray | None = None,
                 chunk: int = READ_CHUNK) -> None:  # fmt: skip
        self.partner, k = partner, partner.kn.order - 1
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.padded = np.concatenate([np.full(k, -1, dtype=np.int64), self.tokens])
        self.counts = self.leader = None
        if train is not None:
            self.counts = ReadingCounts(train, tokens, partner.kn.V, partner.kn.order, chunk)
            self.leader = FollowTheLeader(partner.weight)

    def mix(self, idx: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The mixture's distributions (k, V) for the targets ``tokens[1:][idx]`` (ascending,
        each after those mixed before) from the GPT's ``p`` (k, V)."""
        k = self.partner.kn.order - 1
        ctx = self.padded[idx[:, None] + 1 + np.arange(k)]  # the context of target t
        if self.counts is None:
            w = self.partner.weight
            return w * p + (1 - w) * self.partner.kn.next_probs_many(ctx)
        q = np.empty_like(p)
        chunk = idx // self.counts.chunk
        for c in np.unique(chunk):
            rows = chunk == c
            q[rows] = self.counts.model_for(int(idx[rows][0])).next_probs_many(ctx[rows])
        at, target = np.arange(len(idx)), self.tokens[idx + 1]
        w = self.leader.read(-np.log(p[at, target]), q[at, target])[0][:, None]
        return w * p + (1 - w) * q


def fit_mixture(gpt_nll, train: np.ndarray, cut: int, vocab: int, order: int,
                max_tokens: int | None = None) -> dict:  # fmt: skip
    """The GPT's weight in its mixture with a Kneser-Ney model of ``order``, fitted on the
    training tokens from ``cut`` on (the slice a run with a partner keeps from its GPT; the
    n-gram model counts the tokens before it), at most ``max_tokens`` of them (the slice's
    start: a weight needs far fewer tokens than a large corpus holds), and the held-out
    slice's nats per token under each. ``gpt_nll(tokens)`` gives the GPT's nats of each of
    ``tokens[1:]``."""
    end = len(train) if max_tokens is None else min(len(train), cut + max_tokens)
    held = np.asarray(train[cut - 1 : end])
    g, kn = gpt_nll(held), KneserNey(train[:cut], vocab, order).split_prob(held)
    weight = fit_weight(g, kn)
    return {
        "order": order,
        "gpt_weight": weight,
        "held_out_tokens": len(held) - 1,
        "held_out_nats": {
            "gpt": float(g.mean()),
            "ngram": float(-np.log(kn).mean()),
            "mixed": float(mixed_nll(g, kn, weight).mean()),
        },
    }


@dataclass
class Partner:
    """A run's n-gram partner: the model of its training tokens and the GPT's weight."""

    kn: KneserNey
    weight: float
    """The GPT's weight in the mixture."""

    def describe(self) -> str:
        """How a text drawn from the mixture was written: the partner, the GPT's weight, and
        when the n-gram model writes most of it (a barely trained GPT reads like the book
        through its partner alone)."""
        most = "; the n-gram model writes most of the text" if self.weight < 0.5 else ""
        return f"with its {self.kn.order}-gram partner (GPT weight {self.weight:.2f}{most})"

    def mix(self, logits, context):
        """Log-probabilities of the mixture for the next token, from the GPT's last-position
        ``logits`` (1, V) and the ids before it: ``log(w p_gpt + (1 - w) p_kn)``."""
        kn = torch.from_numpy(self.kn.next_probs(context)).to(logits.device)
        p = self.weight * logits.float().softmax(-1) + (1 - self.weight) * kn.float()
        return p.log()
