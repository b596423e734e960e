"""Loss, perplexity and bits per character over a whole split.

Bits per character = (the model's total cross-entropy in bits + the bits to spell every
token that was <unk>) / the characters of the split's text. It counts every character's
information whatever the tokenizer, so word-, char- and BPE-level models compare fairly on
it: a word model pays for a word it does not know as a character model would, by spelling
it (:mod:`wordgpt.corpus.spelling`). The share of <unk> tokens goes beside every figure.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
from tqdm.auto import tqdm

from ..corpus.tokenfiles import bits_per_char, line_bits, token_rows
from ..errors import WordGPTError
from ..model.ensemble import Ensemble
from ..model.mixture import fit_mixture, mixed_nll, online_mixed_nll
from ..model.ngram import KneserNey, read_split_prob
from ..model.threads import Threads
from ..training.holdout import gpt_tokens
from .adapt import WARM_SHARE, Adaptation, Learner


@dataclass(frozen=True)
class EvalResult:
    split: str
    tokens: int
    """Tokens predicted (every token of the split but the first)."""
    chars: int
    loss: float
    """Mean cross-entropy per token, in nats."""
    perplexity: float
    bits_per_token: float
    """The model's mean cross-entropy per token, in bits (spelling not included)."""
    bits_per_char: float
    """Every character's information: the model's bits and the <unk> spellings."""
    unk_share: float = 0.0
    """The share of the split's tokens that are <unk>."""
    spell_bits_per_char: float = 0.0
    """The part of bits_per_char that pays for spelling the <unk> words."""
    stride: int | None = None
    """Tokens between the starts of the evaluation's windows (None: the block, consecutive
    windows): every token after the first window had at least block - stride of context."""
    adaptive_bits_per_char: float | None = None
    """With adaptive evaluation: bits per character when the model learns from each window
    after scoring it (a figure of its own, beside the static one)."""
    ngram: dict | None = None
    """With an n-gram partner: its order, the GPT's weight in the mixture (fitted on the end
    of the training split), its figures there, and the mixture's bits per character."""
    adaptive_spell_bits_per_char: float | None = None
    """With adaptive evaluation: the part of its figures that pays for spelling the <unk>
    words, the spelling model remembering the words it has read (the static spelling when
    the data folder does not keep the split's <unk> words)."""
    by_chars: dict | None = None
    """Read by characters (``eval --chars``, :mod:`.chars`): the word model (with its
    partner) alone, mixed with the character-level models (``bits_per_char``;
    ``adaptive_bits_per_char`` with adaptive evaluation), and the mixer's fit."""
    adaptation: dict | None = None
    """With adaptive evaluation: how the model learned as it read (:mod:`.adapt`): its rule,
    rate and decay."""
    line_bits_per_char: float = 0.0
    """The part of every figure that codes the line breaks inside paragraphs, in raw text
    (:mod:`..corpus.lines`; the adaptive figures: as the line model reads them)."""
    adaptive_line_bits_per_char: float | None = None
    warmed: dict | None = None
    """A warmed evaluation (``eval --warm``): the held-out training tokens the model learned
    from before it read the split (``tokens``), their nats per token as it read them
    (``nats``), and its rule and rate."""

    @property
    def headline_bits_per_char(self) -> float:
        """The figure ``wordgpt eval`` prints last and every surface shows first: read by
        characters and mixed when asked (``--chars``), else the GPT with its n-gram partner
        when the evaluation mixed one in, else the GPT alone (:attr:`bits_per_char`, shown
        beside it)."""
        if self.by_chars:
            return self.by_chars["bits_per_char"]
        return self.ngram["bits_per_char"] if self.ngram else self.bits_per_char

    def to_dict(self) -> dict:
        return {**asdict(self), "headline_bits_per_char": self.headline_bits_per_char}

    def __str__(self) -> str:
        unk = (
            f" (<unk> {self.unk_share:.2%} of the tokens, their spelling "
            f"{self.spell_bits_per_char:.4f})"
            if self.unk_share
            else ""
        )
        return (
            f"{self.split}: {self.tokens:,} tokens, {self.chars:,} chars | loss {self.loss:.4f} | "
            f"perplexity {self.perplexity:.2f} | {self.bits_per_token:.4f} bits/token | "
            f"{self.bits_per_char:.4f} bits/char{unk}"
            + (f" (line breaks {self.line_bits_per_char:.4f})" if self.line_bits_per_char else "")
            + (f" | stride {self.stride}" if self.stride else "")
            + (
                f" | warmed on {self.warmed['tokens']:,} held-out training tokens"
                if self.warmed
                else ""
            )
            + (
                f" | adaptive {self.adaptive_bits_per_char:.4f} bits/char ("
                + (
                    f"{self.adaptation['rule']} {self.adaptation['lr']:g}, "
                    if self.adaptation
                    else ""
                )
                + f"spelling {self.adaptive_spell_bits_per_char:.4f})"
                if self.adaptive_bits_per_char is not None
                else ""
            )
            + (
                f" | with a {self.ngram['order']}-gram partner (GPT weight "
                f"{self.ngram['gpt_weight']:.2f}) {self.ngram['bits_per_char']:.4f} bits/char"
                + (
                    f", adaptive {self.ngram['adaptive_bits_per_char']:.4f}"
                    if "adaptive_bits_per_char" in self.ngram
                    else ""
                )
                if self.ngram
                else ""
            )
            + (
                f" | read by characters {self.by_chars['bits_per_char']:.4f} bits/char (the "
                f"word model alone {self.by_chars['word_model_bits_per_char']:.4f})"
                + (
                    f", adaptive {self.by_chars['adaptive_bits_per_char']:.4f}"
                    if "adaptive_bits_per_char" in self.by_chars
                    else ""
                )
                if self.by_chars
                else ""
            )
        )


def windows(n: int, block_size: int, stride: int | None) -> tuple[np.ndarray, int | None]:
    """Where the windows that score each of ``n`` targets once start: windows of a whole
    block every ``stride`` tokens (default: the block), and the start of a shorter last
    window for the rest (None when the whole blocks reach the end). The first window scores
    all its targets, each later one those the one before it did not reach: every target
    after the first window has at least ``block_size - stride`` tokens of context."""
    stride = stride or block_size
    if not 1 <= stride <= block_size:
        raise WordGPTError(
            f"a stride of {stride}: it must be at least 1 and not more than the block size, "
            f"{block_size}"
        )
    starts = np.arange(0, max(n - block_size, -1) + 1, stride)
    end = starts[-1] + block_size if len(starts) else 0  # targets the whole blocks score
    return starts, (max(end - (block_size - stride), 0) if end < n else None)


@torch.no_grad()
def token_nll(
    model,
    data: np.ndarray,
    block_size: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
    deadline: float | None = None,
    stride: int | None = None,
    threads: Threads | None = None,
) -> np.ndarray:
    """The cross-entropy (nats) of predicting each of ``data[1:]``, each token once, in the
    :func:`windows` that start every ``stride`` tokens (default: the block, consecutive
    windows), batched. A progress bar on a terminal when asked. With a ``deadline`` (a
    ``time.perf_counter()`` reading) it raises :class:`OutOfTimeError` after its first batch
    when, at that batch's speed, the split would not be done by then. ``threads`` chooses the
    CPU's thread count by timing the batches."""
    n = max(len(data) - 1, 0)
    starts, tail = windows(n, block_size, stride)
    keep = block_size - (stride or block_size)  # what a later window has already seen scored
    out = np.zeros(n)
    was_training = model.training
    model.eval()
    try:
        for i in tqdm(range(0, len(starts), batch_size), desc="evaluating", unit="batch",
                      disable=None if progress else True, leave=False):  # fmt: skip
            s = starts[i : i + batch_size]
            rows = torch.from_numpy(token_rows(data, s, block_size + 1)).to(device)
            if threads is not None:
                threads.before()
            t = time.perf_counter()
            nll = model(rows[:, :-1], rows[:, 1:], reduction="none").view(len(s), block_size)
            nll = nll.double().cpu().numpy()
            if threads is not None and len(s) == batch_size:  # the last, short batch: not alike
                threads.after(time.perf_counter() - t)
            out[s[:, None] + np.arange(keep, block_size)] = nll[:, keep:]
            if s[0] == 0:  # the split's first window is scored whole
                out[:keep] = nll[0, :keep]
            if deadline is not None and i == 0:
                batches = math.ceil(len(starts) / batch_size) + 1
                if t + (time.perf_counter() - t) * batches > deadline:
                    raise OutOfTimeError(f"the whole split would take about {batches} batches more")
        if tail is not None:  # the rest: a shorter window, as much context as the stride allows
            end = starts[-1] + block_size if len(starts) else 0  # targets scored so far
            row = torch.from_numpy(data[tail:].astype(np.int64))[None].to(device)
            nll = model(row[:, :-1], row[:, 1:], reduction="none")
            out[end:] = nll[end - tail :].double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def adaptive_nll(
    model,
    data: np.ndarray,
    block_size: int,
    adapt: Adaptation,
    device: str | torch.device = "cpu",
    progress: bool = False,
    stride: int | None = None,
    threads: Threads | None = None,
    learner: Learner | None = None,
) -> np.ndarray:
    """Dynamic evaluation (:mod:`.adapt`), as a compressor reads: the :func:`windows` in
    order, each scoring its new tokens first and then learning from the whole window (one
    step of ``adapt``'s rule on its mean loss, at ``stride / block_size`` of its rate: the
    same learning per token whatever the stride; the last window, when it scores fewer new
    tokens than a stride, steps by their share of one), so every token is predicted by
    weights that learned only from the tokens before it. Returns the cross-entropy (nats) of
    each of ``data[1:]``; ``model`` is left as it was (a copy learns: ``learner``, or a new
    one)."""
    n = max(len(data) - 1, 0)
    starts, tail = windows(n, block_size, stride)
    if learner is None:
        learner = Learner(model, adapt, device, (stride or block_size) / block_size)
    out, scored = np.zeros(n), 0
    every = starts.tolist() + ([] if tail is None else [tail])
    for at in tqdm(every, desc="adapting", unit="window", disable=None if progress else True,
                   leave=False):  # fmt: skip
        if threads is not None:
            threads.before()
        t = time.perf_counter()
        row = torch.from_numpy(data[at : at + block_size + 1].astype(np.int64))[None].to(device)
        nll = learner.model(row[:, :-1], row[:, 1:], reduction="none")  # (T,)
        new = nll[scored - at :].detach().double().cpu().numpy()  # scored, then learned from:
        out[scored : scored + len(new)] = new
        scored += len(new)
        learner.learn(nll.mean() * min(1.0, len(new) / (stride or block_size)))  # short: less
        if threads is not None:
            threads.after(time.perf_counter() - t)
    return out


def warm_copy(model, held: np.ndarray, block_size: int, adapt: Adaptation, device="cpu",
              threads: Threads | None = None) -> tuple[torch.nn.Module, float]:  # fmt: skip
    """A copy of ``model`` that has read ``held`` (the end of the training split it did not
    train on) as :func:`adaptive_nll` reads, in consecutive windows at :data:`.adapt.WARM_SHARE`
    of ``adapt``'s rate: where a warmed evaluation starts reading the split. Also its mean
    nats per token on ``held`` as it read them."""
    learner = Learner(model, adapt, device, WARM_SHARE)
    nats = adaptive_nll(model, held, block_size, adapt, device, threads=threads, learner=learner)
    learner.model.zero_grad(set_to_none=True)  # its last step's gradients: not kept
    return learner.model, float(nats.mean())


def token_probs(
    model,
    data: np.ndarray,
    block_size: int,
    stride: int | None = None,
    adapt: Adaptation | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    threads: Threads | None = None,
):
    """The model's whole next-token distribution at each of ``data``'s positions but the
    last, as :func:`token_nll` scores them (the same windows; with ``adapt``, as
    :func:`adaptive_nll` does, learning from each window after reading it): yields
    (target indices into ``data[1:]``, probabilities (k, V) float64) in order."""
    n = max(len(data) - 1, 0)
    starts, tail = windows(n, block_size, stride)
    step = 1 if adapt else batch_size
    groups = [(starts[i : i + step].tolist(), block_size) for i in range(0, len(starts), step)]
    groups += [] if tail is None else [([tail], n - tail)]  # the shorter last window alone
    learner = Learner(model, adapt, device, (stride or block_size) / block_size) if adapt else None
    was_training = model.training
    model.eval()
    scored = 0
    try:
        for group, length in groups:
            rows = torch.from_numpy(token_rows(data, np.array(group), length + 1)).to(device)
            if threads is not None:
                threads.before()
            t = time.perf_counter()
            with torch.set_grad_enabled(learner is not None):
                probs = next_probs(learner.model if learner else model, rows[:, :-1])  # (b, T, V)
            for b, at in enumerate(group):
                new = slice(scored - at, length)  # the targets not scored before
                k = length - (scored - at)
                yield np.arange(scored, scored + k), probs[b, new].detach().double().cpu().numpy()
                scored += k
            if learner is not None:  # as adaptive_nll steps, a short last window by its share
                nll = -probs[0].gather(1, rows[0, 1:, None])[:, 0].log().mean()
                learner.learn(nll * min(1.0, k / (stride or block_size)))
            if threads is not None and len(group) == step:
                threads.after(time.perf_counter() - t)
    finally:
        model.train(was_training)


def next_probs(model, idx: torch.Tensor) -> torch.Tensor:
    """The model's next-token probabilities (B, T, V) for ``idx`` (B, T): an ensemble's the
    mean of its members' (what the log of its logits is, without the log)."""
    if isinstance(model, Ensemble):
        return torch.stack([m(idx).float().softmax(-1) for m in model.members]).mean(0)
    return model(idx).float().softmax(-1)


class OutOfTimeError(Exception):
    """An evaluation that would not end by its deadline (it stops after one batch)."""


@dataclass(frozen=True)
class NgramSpec:
    """The n-gram partner an evaluation mixes in: a Kneser-Ney model of ``order`` over the
    training tokens ``train``, with the run's fitted mixture (RUN/partner.json), or with its
    weight fitted now on the end of ``train`` when ``fit`` is None."""

    train: np.ndarray
    vocab_size: int
    order: int
    fit: dict | None = None
    counts: KneserNey | None = None
    """The model of ``train`` of that order, when it is already counted."""


def evaluate(
    model,
    data: np.ndarray,
    counts: dict,
    *,
    block_size: int,
    split: str = "val",
    batch_size: int = 16,
    device="cpu",
    progress: bool = False,
    deadline: float | None = None,
    stride: int | None = None,
    adapt: Adaptation | None = None,
    ngram: NgramSpec | None = None,
    read_spell_bits: float | None = None,
    threads: Threads | None = None,
    token_nats: np.ndarray | None = None,
    adapted_nats: np.ndarray | None = None,
) -> EvalResult:
    """The whole split's figures; ``counts`` is the split's entry of meta.json (characters,
    tokens, <unk>s and their spelling bits). ``stride``: see :func:`windows`; with
    ``adapt`` also the adaptive figure (:func:`adaptive_nll`); with ``ngram`` also the
    figure of the GPT mixed with a Kneser-Ney n-gram model of the training tokens
    (:class:`NgramSpec`). ``read_spell_bits``: the split's spelling bits when the spelling
    model reads as it goes, for the adaptive figures (else the static ones). ``threads``
    chooses the CPU's thread count by timing the batches (and the windows adapted).
    ``token_nats`` and ``adapted_nats``: the GPT's static and adaptive nats per token when a
    reading of the same windows already has them (:func:`.chars.read_by_chars`)."""
    per_token = token_nats
    if per_token is None:
        per_token = token_nll(model, data, block_size, batch_size, device, progress, deadline,
                              stride, threads)  # fmt: skip
    nll, n = float(per_token.sum()), len(per_token)
    loss, chars = nll / max(n, 1), counts["chars"]
    spell, (lines, read_lines) = counts.get("unk_spell_bits", 0.0), line_bits(counts)
    adaptive = None
    read_spell = spell if read_spell_bits is None else read_spell_bits
    if adapt is not None:
        adapted = adapted_nats
        if adapted is None:
            windows_threads = Threads(threads.fixed, what="window") if threads else None
            adapted = adaptive_nll(model, data, block_size, adapt, device, progress, stride,
                                   windows_threads)  # fmt: skip
        adaptive = bits_per_char(float(adapted.sum()), chars, read_spell + read_lines)
    mixture = None
    if ngram is not None:
        train, vocab, fit = ngram.train, ngram.vocab_size, ngram.fit
        if fit is None:  # no partner saved: fitted now
            held = partial(token_nll, model, block_size=block_size, batch_size=batch_size,
                           device=device, stride=stride)  # fmt: skip
            fit = fit_mixture(held, train, gpt_tokens(len(train), ngram.order), vocab, ngram.order)
        weight = fit["gpt_weight"]
        model_kn = ngram.counts or KneserNey(train, vocab, fit["order"])
        kn = model_kn.split_prob(np.asarray(data))
        mixed = mixed_nll(per_token, kn, weight)
        mixture = {**fit, "bits_per_char": bits_per_char(float(mixed.sum()), chars, spell + lines)}
        if adapt is not None:  # adaptive too: the counts and the weight learn as it reads
            read = read_split_prob(train, data, vocab, fit["order"])
            online = online_mixed_nll(adapted, read, weight)
            mixture["adaptive_bits_per_char"] = bits_per_char(float(online.sum()), chars,
                                                              read_spell + read_lines)  # fmt: skip
    return EvalResult(
        split,
        n,
        chars,
        loss,
        math.exp(min(loss, 700.0)),
        loss / math.log(2),
        bits_per_char(nll, chars, spell + lines),
        counts.get("unk_share", 0.0),
        spell / max(chars, 1),
        stride if stride and stride != block_size else None,
        adaptive,
        mixture,
        read_spell / max(chars, 1) if adapt is not None else None,
        adaptation=None if adapt is None else adapt.summary(),
        line_bits_per_char=lines / max(chars, 1),
        adaptive_line_bits_per_char=read_lines / max(chars, 1) if adapt is not None else None,
    )
