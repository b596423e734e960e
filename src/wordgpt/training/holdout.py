"""Training's held-out policy for a run with an n-gram partner: the GPT trains on all but the
last HELD_OUT of the training split, and the mixture's weight is fitted on that slice once
the GPT is trained (:func:`wordgpt.model.mixture.fit_mixture`), so neither model has seen the
tokens the weight is fitted on, and never the val split.
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import WordGPTError

HELD_OUT = 0.05
"""The share of the training split (its end) that the mixture's weight is fitted on; a run
with a partner keeps it from the GPT."""


MIN_HELD_OUT = 100
"""Fewer held-out tokens than this fit no weight worth having: such a run has no partner."""
MAX_TOKENS = 20_000_000
"""A training split longer than this gets no partner (its counts would take gigabytes)."""


def partner_order(n_train: int, vocab: int, asked: int) -> tuple[int, str | None]:
    """The order of the partner a run of ``n_train`` training tokens can have when
    ``asked`` for one (0: none), and what was changed, if anything."""
    order = asked
    while order and float(vocab) ** order >= 2.0**62:  # the keys must fit 64 bits
        order -= 1
    if order and n_train * HELD_OUT < MIN_HELD_OUT:
        return 0, (f"no n-gram partner: {n_train:,} training tokens are too few to hold out "
                   f"{MIN_HELD_OUT} to fit it on")  # fmt: skip
    if order and n_train > MAX_TOKENS:
        return 0, f"no n-gram partner: {n_train:,} training tokens are more than it counts"
    if order != asked:
        return (
            order,
            f"an n-gram partner of order {order}: {asked} does not fit a vocabulary "
            f"of {vocab:,} in 64-bit keys",
        )
    return order, None


def gpt_tokens(n_train: int, order: int) -> int:
    """How many of the ``n_train`` training tokens the GPT trains on when its run has a
    partner of ``order`` (0: none, all of them); the rest is held out."""
    if not order:
        return n_train
    cut = int(n_train * (1 - HELD_OUT))
    if n_train - cut < 2 or cut < order + 1:
        raise WordGPTError(
            f"the training split ({n_train:,} tokens) is too short to hold out a slice for an "
            f"n-gram partner of order {order}; train with --ngram 0"
        )
    return cut


def counting_seconds(tokens: np.ndarray, vocab: int, order: int) -> float:
    """About how long counting the n-grams of ``tokens`` takes on this machine, measured on
    an eighth of them (at least 10,000 tokens) and scaled with room (sorting grows faster
    than the tokens): what the end of a run with a partner spends counting, once."""
    from ..model.ngram import KneserNey

    n = len(tokens)
    part = min(n, max(n // 8, 10_000))
    t = time.perf_counter()
    KneserNey(np.asarray(tokens[:part]), vocab, order)
    return (time.perf_counter() - t) * (n / part) * 1.5
