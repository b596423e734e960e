"""Character-level partners of the word model, mixed as compressors mix.

A context-mixing compressor (paq8, cmix) predicts each next character from many models at
once and combines them with a small learned mixer. This module has the parts, each a
normalised distribution over the next character given only the text before it:

- **context models** of orders 1 to 6 and a few longer ones (hashed): the counts of each
  character after the same last k characters (a text's case and line marks passed over, the
  mark right before noted), in the training text (and, adapting, in the text read so far),
  each order backed off to the one below (Witten-Bell), so each is a whole distribution;
- a **column model** where the text has line breaks: the counts of each character after the
  same character in the same column (marks left out), which learns the width lines are
  wrapped at;
- a **match model**: the character that followed the most recent earlier occurrence of the
  longest recent context found (up to 32 characters), with the length of that match;
- the word model read by characters (:mod:`wordgpt.use.charview`).

**The mixer** predicts a character in the two steps the word model's reading needs (which side
of the state's split, then which character within it). Each step is a log-linear mixture (the
geometric mixing of paq's mixers: a weighted sum of each model's log-probabilities, then
normalised), with a weight set chosen by a small context: the state's kind, the match's
length, and whether the column model expects a line break. Statically the weights are fitted
once on the end of the training split that the GPT did not train on, counting the text
before it, and never change on val; adapting, they then learn from each character after
predicting it (one gradient step), as the counts do.

Every part depends only on the characters before the one predicted, and each step's
probabilities sum to 1 over its outcomes (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ORDERS = (1, 2, 3, 4, 5, 6, 8, 12)
"""The context models' orders (characters of context)."""
MATCH_ORDERS = (32, 24, 16, 12, 8)
"""The match model's context lengths, longest first."""
MATCH_BUCKETS = 4
"""The match length's buckets for the mixer's weight sets: none, 8-11, 12-23, 24 or more."""
LINE_END = 0.2
"""The column model's probability of a line break from which the mixer takes its line-end
weight sets (measured on Jane Eyre as it is: 0.2 % better read by characters than none)."""
MAX_COLUMN = 160
"""Columns from this one on share a context (a text without line breaks is always there)."""
FLOOR = 1e-13
"""The smallest probability a model's input gives a character (a log-probability of -30)."""
STRETCH = 16.0
"""The side step's inputs (log-odds) are clipped to this."""
_P = np.uint64(0x9E3779B97F4A7C15)  # the rolling hash's multiplier (odd)
_NONE = np.uint64(0xD6E8FEB86659FD93)  # no word there (the text's start)


def context_keys(sym: np.ndarray, order: int, marks: np.ndarray | None = None) -> np.ndarray:
    """A hash of the ``order`` symbols before each position (uint64; the text's start padded
    with a symbol of its own). With ``marks`` (bool: the positions that hold a capital's or a
    line's mark): of the ``order`` symbols before it that are not marks, and of the mark right
    before it (if any), so that a context reads across a mark as if it were not there."""
    if marks is not None and marks.any():
        keep = ~marks
        before = np.r_[0, np.cumsum(keep)[:-1]]  # before[i]: the symbols before i kept
        key = context_keys(np.r_[sym[keep], 0], order)[before]
        mark = np.r_[0, np.where(marks[:-1], sym[:-1] + 1, 0)].astype(np.uint64)
        with np.errstate(over="ignore"):
            return _mix(key * _P + mark)
    n = len(sym)
    s = sym.astype(np.uint64) + np.uint64(2)
    key = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, order + 1):
            prev = np.ones(n, dtype=np.uint64)  # 1: before the text
            prev[k:] = s[:-k]
            key = key * _P + prev
    return key


def word_keys(sym: np.ndarray, word: np.ndarray, words: int) -> np.ndarray:
    """A hash, for each position, of the word being read so far (the word characters since
    the last other one; between words the last character instead) and of the ``words`` whole
    words before it: the contexts of a compressor's word model. ``word``: which positions
    hold word characters."""
    n = len(sym)
    s = sym.astype(np.uint64) + np.uint64(2)
    idx = np.arange(n)
    w = np.asarray(word, dtype=bool)
    with np.errstate(over="ignore"):
        H = np.r_[np.uint64(0), _prefix_hash(s)]  # H[i]: the hash of the first i symbols
        pw = np.r_[np.uint64(1), np.cumprod(np.full(n, _P, dtype=np.uint64))]  # P^k
        first = w & np.r_[True, ~w[:-1]]  # a run of word characters starts here
        run = np.maximum.accumulate(np.where(first, idx, 0))  # the latest run's start
        inword = np.r_[False, w[:-1]]  # position i - 1 is a word character
        a = np.r_[0, run[:-1]]  # the start of the run position i - 1 is in
        key = _mix(np.where(inword, H[idx] - H[a] * pw[idx - a], np.r_[np.uint64(1), s[:-1]] * _P))
        ends = np.flatnonzero(w & ~np.r_[w[1:], False])  # each run's last position
        whole = H[ends + 1] - H[run[ends]] * pw[ends + 1 - run[ends]]
        before = np.searchsorted(ends, np.where(inword, a, idx))  # runs that ended before
        for k in range(1, words + 1):
            j = before - k
            key = _mix(key * _P + np.where(j >= 0, whole[np.maximum(j, 0)], _NONE))
    return key


def columns(starts: np.ndarray, uncounted: np.ndarray) -> np.ndarray:
    """The column each position's character stands in: the characters after ``starts`` (for
    each position, that of the line break its line began after; -1: the text's start), those
    in ``uncounted`` left out."""
    counted = np.cumsum(~uncounted)  # counted[i]: those in [0, i]
    return np.r_[0, counted[:-1]] - np.where(starts >= 0, counted[np.maximum(starts, 0)], 0)


def column_keys(sym: np.ndarray, starts: np.ndarray, uncounted: np.ndarray) -> np.ndarray:
    """A hash, for each position, of its column (:func:`columns`) and of the symbol before
    it: the context of a compressor's column model, which learns where a text's lines end."""
    col = np.minimum(columns(starts, uncounted), MAX_COLUMN).astype(np.uint64)
    prev = np.r_[np.uint64(1), sym[:-1].astype(np.uint64) + np.uint64(2)]
    with np.errstate(over="ignore"):
        return _mix(col * _P + prev)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: hashes combined after it do not collide by arithmetic."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _prefix_hash(s: np.ndarray) -> np.ndarray:
    """``h[i] = h[i - 1] * P + s[i]`` (mod 2**64) for every i at once: ``P^i`` times the
    running sum of ``s[j] P^-j`` (P odd, so it has an inverse)."""
    n = len(s)
    with np.errstate(over="ignore"):
        up = np.cumprod(np.full(n, _P, dtype=np.uint64))
        down = np.cumprod(np.full(n, _inverse(int(_P)), dtype=np.uint64))
        return np.cumsum(s * down, dtype=np.uint64) * up


def _inverse(a: int) -> np.uint64:
    """The inverse of an odd number modulo 2**64 (Newton's iteration)."""
    inv = a
    for _ in range(6):
        inv = inv * (2 - a * inv) % (1 << 64)
    return np.uint64(inv)


def counts_before(keys: np.ndarray, nxt: np.ndarray, start: int, A: int, adaptive: bool,
                  valid: np.ndarray) -> np.ndarray:  # fmt: skip
    """(n - start, A): for each position from ``start`` on, how often each symbol followed its
    context (``keys``) in the text before ``start`` (``adaptive``: before the position
    itself). ``valid``: which positions' symbols count (a placeholder does not)."""
    hk, hn = keys[:start][valid[:start]], nxt[:start][valid[:start]]
    tk = keys[start:]
    uk, inv = np.unique(hk, return_inverse=True)
    at = np.minimum(np.searchsorted(uk, tk), max(len(uk) - 1, 0))
    found = (uk[at] == tk) if len(uk) else np.zeros(len(tk), dtype=bool)
    need, row = np.unique(at[found], return_inverse=True)
    table_row = np.full(len(uk), -1, dtype=np.int64)
    table_row[need] = np.arange(len(need))
    r = table_row[inv]
    keep = r >= 0
    table = np.bincount(r[keep] * A + hn[keep], minlength=len(need) * A).reshape(len(need), A)
    out = np.zeros((len(tk), A), dtype=np.float32)
    out[found] = table[row]
    if adaptive:  # and the text from start on, each position counting those before it
        tn = nxt[start:]
        ok = valid[start:]
        order = np.lexsort((np.arange(len(tk)), tk))
        one = np.zeros((len(tk), A), dtype=np.float32)
        one[np.flatnonzero(ok), tn[ok]] = 1.0
        o = one[order]
        excl = np.cumsum(o, axis=0) - o
        ks = tk[order]
        first = np.r_[True, ks[1:] != ks[:-1]]
        group = np.maximum.accumulate(np.where(first, np.arange(len(ks)), 0))
        excl -= excl[group]
        out[order] += excl
    return out


def backed_off(counts: list[np.ndarray], unigram: np.ndarray) -> list[np.ndarray]:
    """Each order's distribution, Witten-Bell: ``(n(c) + t p_lower(c)) / (N + t)`` (``t``
    the symbols seen after the context), from the unigram up; an unseen context keeps the
    order below."""
    p = unigram
    out = []
    for n in counts:
        N = n.sum(1, keepdims=True)
        t = (n > 0).sum(1, keepdims=True).astype(np.float32)
        p = np.where(N > 0, (n + t * p) / np.maximum(N + t, 1), p).astype(np.float32)
        out.append(p)
    return out


def match_predictions(sym: np.ndarray, start: int, adaptive: bool, valid: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """For each position from ``start`` on: the symbol that followed the most recent earlier
    occurrence of the longest of :data:`MATCH_ORDERS` contexts found (-1: none), and the
    bucket of that length (0: none). Earlier: before ``start`` statically, before the
    position itself adapting."""
    n = len(sym) - start
    pred = np.full(n, -1, dtype=np.int64)
    bucket = np.zeros(n, dtype=np.int64)
    for L in sorted(MATCH_ORDERS):  # shorter first: a longer match found later overrides
        keys = context_keys(sym, L)
        pos = np.arange(len(sym))
        order = np.lexsort((pos, keys))
        ks, ps = keys[order], pos[order]
        same = np.r_[False, ks[1:] == ks[:-1]]
        if adaptive:  # the element before in the same group
            prev = np.where(same, np.r_[-1, ps[:-1]], -1)
        else:  # the last one before start in the same group
            hist = np.where(ps < start, ps, -1)
            first = np.r_[True, ~same[1:]]
            gid = np.cumsum(first) - 1
            last = np.full(gid[-1] + 1 if len(gid) else 0, -1)
            np.maximum.at(last, gid, hist)
            prev = last[gid]
        found = np.empty(len(sym), dtype=np.int64)
        found[ps] = prev
        f = found[start:]
        ok = (f >= L) & valid[np.maximum(f, 0)]  # a full context, and a symbol that counts
        pred = np.where(ok, sym[np.maximum(f, 0)], pred)
        b = 1 if L < 12 else 2 if L < 24 else 3
        bucket = np.where(ok, b, bucket)
    return pred, bucket


@dataclass
class Features:
    """What the mixer sees for each character: per model the probability of the side that
    goes on and the log-probabilities within the character's own side, the match model's
    prediction, and the weight set."""

    on_side: np.ndarray  # (n,) bool: the character is on the side that goes on
    side_logit: np.ndarray  # (n, K1) inputs of the side step (stretched probabilities)
    within: np.ndarray  # (n, K2, A) log-probabilities within the own side (-inf: other side)
    target: np.ndarray  # (n,) symbol ids
    sets: np.ndarray  # (n,) weight set

    def __len__(self) -> int:
        return len(self.target)


def features(cm: list[np.ndarray], gpt, match: tuple[np.ndarray, np.ndarray],
             masks: np.ndarray, line_end: np.ndarray | None = None) -> Features:  # fmt: skip
    """The mixer's inputs from the context models' distributions ``cm`` (each (n, A)), the
    word model's :class:`wordgpt.use.charview.CharReading` ``gpt``, the match model, and
    where the column model expects a line break (``line_end``, bool; None: nowhere)."""
    pred, bucket = match
    n, A = len(gpt.symbols), masks.shape[1]
    mask = masks[gpt.split]  # (n, A) the side that goes on
    own = np.where(gpt.on_side[:, None], mask, ~mask)  # (n, A) the character's side
    side, within = [], []
    for p in cm:
        p = p.astype(np.float64)
        side.append(np.log((p * mask).sum(1)) - np.log((p * ~mask).sum(1)))
        w = p * own
        within.append(np.where(own, np.log(np.maximum(w / w.sum(1, keepdims=True), FLOOR)),
                               -np.inf))  # fmt: skip
    side.append(np.log(np.maximum(gpt.p_on, 1e-300)) - np.log(np.maximum(gpt.p_end, 1e-300)))
    within.append(np.where(own, np.log(np.maximum(gpt.within, FLOOR)), -np.inf))
    has = pred >= 0
    m_on = np.where(has, np.where(mask[np.arange(n), np.maximum(pred, 0)], 1.0, -1.0), 0.0)
    side.append(m_on)
    side.append(np.ones(n))  # bias
    hit = np.zeros((n, A))
    hit[np.flatnonzero(has), pred[has]] = 1.0
    within.append(np.where(own, hit, -np.inf))
    sets = gpt.split * MATCH_BUCKETS + bucket  # the weight set: the state's kind, the match
    if line_end is not None:  # and whether a line may end here
        sets = sets + SETS_TEXT * line_end
    side = np.clip(np.stack(side, 1), -STRETCH, STRETCH)  # as paq's stretch(p) is bounded
    return Features(gpt.on_side.copy(), side.astype(np.float32),
                    np.stack(within, 1).astype(np.float32), gpt.symbols.copy(), sets)  # fmt: skip


SETS_TEXT = 3 * MATCH_BUCKETS
"""Weight sets by the state's kind and the match's length."""
SETS = 2 * SETS_TEXT
"""And by whether the column model expects a line break."""


class Mixer:
    """Two log-linear mixers (the side, then the character within it), one weight vector per
    weight set (see the module's docstring)."""

    def __init__(self, k1: int, k2: int):
        self.w1 = np.zeros((SETS, k1))
        self.w1[:, :-2] = 1.0 / (k1 - 2)
        self.w2 = np.full((SETS, k2), 1.0 / k2)

    def state_dict(self) -> dict:
        return {"w1": self.w1.tolist(), "w2": self.w2.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Mixer:
        """The mixer of :meth:`state_dict` (its shapes checked)."""
        w1, w2 = (
            np.asarray(state["w1"], dtype=np.float64),
            np.asarray(state["w2"], dtype=np.float64),
        )
        if w1.ndim == w2.ndim == 2 and len(w1) == len(w2) == SETS_TEXT:  # fitted before the
            w1, w2 = np.tile(w1, (2, 1)), np.tile(w2, (2, 1))  # line-end sets: one for both
        if w1.ndim != 2 or w2.ndim != 2 or len(w1) != SETS or len(w2) != SETS:
            raise ValueError(f"mixer weights of shapes {w1.shape} and {w2.shape}, not ({SETS}, K)")
        if not (np.isfinite(w1).all() and np.isfinite(w2).all()):
            raise ValueError("mixer weights that are not finite")
        mixer = cls(w1.shape[1], w2.shape[1])
        mixer.w1, mixer.w2 = w1, w2
        return mixer

    def _terms(self, f: Features, w1, w2):
        """Each character's nats under weights (torch)."""
        x1 = torch.from_numpy(f.side_logit)
        z = (x1 * w1[f.sets]).sum(1)
        y = torch.from_numpy(f.on_side).to(z.dtype)
        side = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
        x2 = torch.from_numpy(f.within)  # (n, K2, A)
        finite = torch.isfinite(x2)
        logits = (torch.where(finite, x2, 0.0) * w2[f.sets][:, :, None]).sum(1)
        logits = torch.where(finite[:, 0], logits, -torch.inf)
        tgt = torch.from_numpy(f.target)
        inside = -(logits.log_softmax(1).gather(1, tgt[:, None])[:, 0])
        return side + inside

    def nats(self, f: Features) -> np.ndarray:
        """Each character's nats with the weights as they are."""
        with torch.no_grad():
            w1, w2 = torch.from_numpy(self.w1).float(), torch.from_numpy(self.w2).float()
            return self._terms(f, w1, w2).double().numpy()

    def fit(self, f: Features, steps: int = 30) -> None:
        """Fit the weights to these characters (L-BFGS on their mean nats)."""
        w1 = torch.from_numpy(self.w1.astype(np.float32)).requires_grad_()
        w2 = torch.from_numpy(self.w2.astype(np.float32)).requires_grad_()
        opt = torch.optim.LBFGS([w1, w2], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = self._terms(f, w1, w2).mean()
            loss.backward()
            return loss

        opt.step(closure)
        self.w1, self.w2 = w1.detach().double().numpy(), w2.detach().double().numpy()

    def read(self, f: Features, lr: float) -> np.ndarray:
        """Each character's nats when the weights learn from every character after predicting
        it (one gradient step of rate ``lr`` on its nats), as a compressor's mixer does."""
        w1, w2 = self.w1.copy(), self.w2.copy()
        out = np.empty(len(f))
        x1s, x2s = f.side_logit.astype(np.float64), f.within
        for i in range(len(f)):
            s = f.sets[i]
            x1 = x1s[i]
            z = float(x1 @ w1[s])
            y = 1.0 if f.on_side[i] else 0.0
            p1 = 1.0 / (1.0 + np.exp(-z)) if z > -700 else 0.0
            p1 = min(max(p1, 1e-12), 1 - 1e-12)
            x2 = x2s[i]
            cols = np.isfinite(x2[0])
            x = x2[:, cols].astype(np.float64)  # (K2, a)
            logit = w2[s] @ x
            logit -= logit.max()
            e = np.exp(logit)
            q = e / e.sum()
            t = int(np.searchsorted(np.flatnonzero(cols), f.target[i]))
            out[i] = -np.log(p1 if y else 1 - p1) - np.log(max(q[t], 1e-300))
            w1[s] += lr * (y - p1) * x1
            w2[s] += lr * (x[:, t] - x @ q)
        self.w1, self.w2 = w1, w2
        return out
