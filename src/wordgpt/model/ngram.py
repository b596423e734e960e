"""The n-gram partner of the GPT: interpolated Kneser-Ney (Chen and Goodman 1998) over a
run's training tokens; :mod:`.mixture` mixes it with the GPT.

A book repeats its names and phrases; an n-gram model of its training text remembers them
exactly, where a small GPT trained for minutes blurs them. The counts are rebuilt from the
run's training split when the run is loaded (a fraction of a second).

The model is exact and vectorised: every n-gram of each order is a 64-bit key (its token ids
as digits in base V), counted with ``np.unique`` and found with ``np.searchsorted``. The
highest order uses counts, the lower ones continuation counts (in how many contexts a
gram follows), each with its own absolute discount ``n1 / (n1 + 2 n2)`` (kept within 0.05
and 0.95, so no token is ever impossible); the unigrams are
interpolated with the uniform distribution, so every token has a probability and each
context's distribution sums to 1 (a test sums it). :func:`read_split_prob` is the model that
counts a text as it reads it (adaptive evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import WordGPTError


@dataclass(frozen=True)
class Order:
    """The grams of one order and their contexts."""

    keys: np.ndarray
    """The distinct grams, sorted (int64 keys)."""
    counts: np.ndarray
    """Their counts (highest order) or continuation counts (lower orders)."""
    ctx_keys: np.ndarray
    """The distinct contexts (the gram less its last token), sorted."""
    ctx_total: np.ndarray
    """Per context: the sum of its grams' counts."""
    ctx_types: np.ndarray
    """Per context: how many distinct tokens follow it."""
    discount: float


class KneserNey:
    """Interpolated Kneser-Ney of order ``order`` over ``tokens`` (ids below ``vocab_size``)."""

    def __init__(self, tokens: np.ndarray, vocab_size: int, order: int = 3):
        if order < 1 or float(vocab_size) ** order >= 2.0**62:
            raise WordGPTError(f"an n-gram order of {order} does not fit a vocabulary of "
                               f"{vocab_size:,} in 64-bit keys")  # fmt: skip
        self.V, self.order = int(vocab_size), order
        t = np.asarray(tokens, dtype=np.int64)
        if len(t) < order + 1:
            raise WordGPTError(f"{len(t)} training tokens are too few for an {order}-gram model")
        self.orders: list[Order] = []
        longer = None  # the distinct grams of the order above
        for n in range(order, 0, -1):
            grams, counts = np.unique(self.keys(t, n), return_counts=True)
            keys = grams
            if longer is not None:  # continuation counts: how many distinct grams one longer
                keys, counts = np.unique(longer % self.V**n, return_counts=True)  # end with it
            self.orders.insert(0, self._order(keys, counts))
            longer = grams

    @staticmethod
    def _discount(counts: np.ndarray) -> float:
        n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
        return float(n1 / (n1 + 2 * n2)) if n1 + n2 else 0.5

    def _order(self, keys: np.ndarray, counts: np.ndarray) -> Order:
        ctx, first = np.unique(keys // self.V, return_index=True)
        total = np.add.reduceat(counts, first) if len(keys) else counts
        types = np.diff(np.append(first, len(keys)))
        return Order(keys, counts, ctx, total, types, min(max(self._discount(counts), 0.05), 0.95))

    def keys(self, t: np.ndarray, n: int) -> np.ndarray:
        """The key of every n-gram of ``t`` (len(t) - n + 1 of them)."""
        k = np.zeros(len(t) - n + 1, dtype=np.int64)
        for i in range(n):
            k = k * self.V + t[i : len(t) - n + 1 + i]
        return k

    @staticmethod
    def _find(sorted_keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.searchsorted(sorted_keys, q)
        i = np.minimum(i, max(len(sorted_keys) - 1, 0))
        found = (sorted_keys[i] == q) if len(sorted_keys) else np.zeros(len(q), bool)
        return i, found

    def prob(self, context: np.ndarray, target: np.ndarray) -> np.ndarray:
        """P(target | context) for rows of ``context`` (m, order - 1) and ``target`` (m,):
        ids, with -1 where a row's context is shorter (the start of a text)."""
        context = np.asarray(context, dtype=np.int64).reshape(len(target), self.order - 1)
        target = np.asarray(target, dtype=np.int64)
        o = self.orders[0]  # unigrams, interpolated with the uniform distribution
        i, found = self._find(o.keys, target)
        S = o.counts.sum()
        p = np.where(found, np.maximum(o.counts[i] - o.discount, 0) / S, 0.0)
        p += o.discount * len(o.keys) / S / self.V
        for n in range(2, self.order + 1):
            o = self.orders[n - 1]
            h = context[:, self.order - n :]  # the last n - 1 tokens of the context
            ok = (h >= 0).all(axis=1)
            hk = np.zeros(len(target), dtype=np.int64)
            for j in range(n - 1):
                hk = hk * self.V + np.maximum(h[:, j], 0)
            ci, cfound = self._find(o.ctx_keys, hk)
            gi, gfound = self._find(o.keys, hk * self.V + target)
            total = np.where(cfound, o.ctx_total[ci], 1)
            higher = np.where(gfound, np.maximum(o.counts[gi] - o.discount, 0), 0) / total
            back = o.discount * np.where(cfound, o.ctx_types[ci], 0) / total
            p = np.where(ok & cfound, higher + back * p, p)
        return p

    def next_probs_many(self, context: np.ndarray) -> np.ndarray:
        """(m, V): P(each token | each row of ``context``) (m, order - 1), -1 where a row's
        context is shorter; :meth:`prob` for every token at once. Kneser-Ney unrolled: each
        order adds its few seen continuations (discounted) to the order below scaled by its
        back-off weight, so a row is the unigram distribution times the product of the
        back-off weights plus a sparse part."""
        context = np.asarray(context, dtype=np.int64).reshape(-1, self.order - 1)
        m = len(context)
        o = self.orders[0]
        S = o.counts.sum()
        uni = np.full(self.V, o.discount * len(o.keys) / S / self.V)
        uni[o.keys] += np.maximum(o.counts - o.discount, 0) / S
        scale = np.ones(m)  # the product of the back-off weights above the current order
        parts = []  # (rows, tokens, probabilities) of each order's seen continuations
        for n in range(self.order, 1, -1):
            o = self.orders[n - 1]
            h = context[:, self.order - n :]
            ok = (h >= 0).all(axis=1)
            hk = np.zeros(m, dtype=np.int64)
            for j in range(n - 1):
                hk = hk * self.V + np.maximum(h[:, j], 0)
            ci, cfound = self._find(o.ctx_keys, hk)
            use = ok & cfound
            lo = np.searchsorted(o.keys, hk * self.V)
            hi = np.searchsorted(o.keys, (hk + 1) * self.V)
            size = np.where(use, hi - lo, 0)
            rows = np.repeat(np.arange(m), size)
            at = np.repeat(lo, size) + (
                np.arange(size.sum()) - np.repeat(np.cumsum(size) - size, size)
            )
            total = np.where(use, o.ctx_total[ci], 1).astype(np.float64)
            value = np.maximum(o.counts[at] - o.discount, 0) / total[rows] * scale[rows]
            parts.append((rows, o.keys[at] % self.V, value))
            scale = np.where(use, scale * o.discount * o.ctx_types[ci] / total, scale)
        out = scale[:, None] * uni[None, :]
        for rows, tokens, value in parts:
            out[rows, tokens] += value  # one (row, token) once per order
        return out

    def next_probs(self, context) -> np.ndarray:
        """P(each token | the last order - 1 ids of ``context``), shape (V,): sums to 1."""
        k = self.order - 1
        ctx = [int(i) for i in list(context)[-k:]] if k else []
        ctx = [-1] * (k - len(ctx)) + ctx
        rows = np.tile(np.asarray(ctx, dtype=np.int64), (self.V, 1))
        return self.prob(rows, np.arange(self.V))

    def split_prob(self, tokens: np.ndarray) -> np.ndarray:
        """P of each of ``tokens[1:]`` given the tokens before it in ``tokens``."""
        t = np.asarray(tokens, dtype=np.int64)
        n, k = len(t) - 1, self.order - 1
        if n <= 0:
            return np.zeros(0)
        padded = np.concatenate([np.full(k, -1, dtype=np.int64), t])
        if k:  # the context of tokens[i + 1] is padded[i + 1 : i + 1 + k]
            ctx = np.lib.stride_tricks.sliding_window_view(padded[1 : n + k], k)
        else:
            ctx = np.zeros((n, 0), dtype=np.int64)
        return self.prob(ctx, t[1:])


READ_CHUNK = 2048
"""Adaptive evaluation: the n-gram model counts the text it has read again every this many
tokens (or in at most MAX_RECOUNTS chunks of a longer text)."""
MAX_RECOUNTS = 32


class ReadingCounts:
    """The Kneser-Ney model of ``order`` that counts ``tokens`` as it reads them, as a
    compressor does: chunk by chunk, the model of ``train`` followed by the tokens before the
    chunk scores the chunk's targets (of ``tokens[1:]``), so a token's probability never
    depends on it or on anything after it. Chunks of ``chunk`` tokens, or :data:`MAX_RECOUNTS`
    of a longer text."""

    def __init__(self, train: np.ndarray, tokens: np.ndarray, vocab: int, order: int,
                 chunk: int = READ_CHUNK) -> None:  # fmt: skip
        self.train = np.asarray(train, dtype=np.int64)
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.vocab, self.order = vocab, order
        self.chunk = max(chunk, math.ceil(max(len(self.tokens) - 1, 0) / MAX_RECOUNTS))
        self._at, self._model = -1, None  # the chunk counted last

    def model_for(self, target: int) -> KneserNey:
        """The model that scores ``tokens[1:][target]`` (counted once per chunk, in turn)."""
        at = target // self.chunk * self.chunk
        if at != self._at:
            text = np.concatenate([self.train, self.tokens[: at + 1]]) if at else self.train
            self._at, self._model = at, KneserNey(text, self.vocab, self.order)
        return self._model


def read_split_prob(train: np.ndarray, tokens: np.ndarray, vocab: int, order: int,
                    chunk: int = READ_CHUNK) -> np.ndarray:  # fmt: skip
    """P of each of ``tokens[1:]`` as :class:`ReadingCounts` reads them. One chunk as long as
    the text: the static model's :meth:`KneserNey.split_prob`."""
    reading = ReadingCounts(train, tokens, vocab, order, chunk)
    t, n, k = reading.tokens, max(len(tokens) - 1, 0), order - 1
    out = np.empty(n)
    for at in range(0, n, reading.chunk):  # scores the targets t[at + 1 : at + chunk + 1]
        seg = t[max(at + 1 - k, 0) : at + reading.chunk + 1]  # the targets and their contexts
        m = min(reading.chunk, n - at)
        out[at : at + m] = reading.model_for(at).split_prob(seg)[-m:]
    return out
