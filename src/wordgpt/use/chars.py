"""Bits per character read one character at a time (``wordgpt eval --chars``): the word model,
with its ensemble and its n-gram partner, read by characters (:mod:`.charview`) and
mixed with character-level context models and a match model as a compressor mixes
(:mod:`..model.charmix`).

The recipe, for a split:

1. the texts: the split's tokens as strings and the training split's, each ``<unk>`` its word
   from the data folder's ``val.unk.jsonl`` and ``train.unk.jsonl`` (a folder prepared before
   the training split's were kept: a placeholder that no model counts or predicts);
2. the mixer's weights, fitted once on the end of the training split that the GPT did not
   train on (the n-gram partner's slice; the context models counting the text before it), and
   kept in RUN/charmix.json. That slice is read as the split will be: its ``<unk>`` words
   spelled by a spelling lexicon without those it alone has (as the split's new words are
   not in it), so that the weights for the text the vocabulary does not know are fitted on
   such text;
3. the word model's distributions over the split, mixed with the partner token by token, read
   by characters;
4. the context models (with a column model where the text has line breaks) and the match
   model over the training text and the split, counting the training text only (static) or
   also the split as it is read (adaptive);
5. the mixer: fixed weights (static), or weights that learn from each character after
   predicting it (adaptive, where the GPT learns from each window too, and the spelling of
   <unk> reads the split's unknown words as they come, as the token figure's does).

The static figure never learns from the split. Every character after the split's first token
is scored, as the token-level figure scores every token after the first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..corpus.marks import CAP, UPPER, WRAP
from ..corpus.tokenfiles import UNK_WORDS, line_bits, load_meta, load_split, load_unk_words
from ..errors import DataError, WordGPTError
from ..fileio import atomic_write
from ..logs import log
from ..model import charmix as cx
from ..model.device import machine_memory
from ..model.mixture import Partner, PartnerReading
from ..model.ngram import KneserNey
from ..training.holdout import gpt_tokens
from .adapt import Adaptation
from .charview import Alphabet, CharReading, CharView, reading_spelling
from .evaluate import token_probs

CHARMIX = "charmix.json"
"""The run folder's file of the character mixer's fitted weights."""
PLACEHOLDER = "\x01"
"""A training <unk>: its word is not kept, so no model counts or predicts it."""
MIXER_LR = 3e-4
"""The adaptive mixer's learning rate (per character; chosen on Don Quixote and Jane Eyre with
the fit on text like val's, where 2e-4 to 3e-4 were best and 1e-3 0.16 % worse)."""
NGRAM_ORDER = 4
"""The order whose held-out slice fits the mixer when the run has no partner (the recipes')."""
BYTES_PER_CHAR = 25_000
"""About the memory reading a split by characters takes per character of it (measured: 4.6
GB for Don Quixote's 216,138 with 46 symbols), for refusing what cannot fit."""
READ_ROWS = 512
"""Token positions read by characters at once (their distributions: READ_ROWS x V)."""


@dataclass(frozen=True)
class CharSpec:
    """What reading a split by characters needs beside the model: its tokenizer, the split's
    <unk> words in order, the training tokens, the partner (a Kneser-Ney model of all of them
    and the GPT's weight), the mixer fitted before (RUN/charmix.json) or None, and the
    training split's <unk> words in order (None: not kept)."""

    tokenizer: object
    unk_words: list[str]
    train: np.ndarray
    partner: Partner | None = None
    fit: dict | None = None
    train_words: list[str] | None = None


def token_strings(itos: list[str], tokens: np.ndarray, unk_words: list[str] | None) -> list[str]:
    """The tokens as strings; each <unk> its word in order (None: the placeholder)."""
    words = iter(unk_words or ())
    if unk_words is None:
        return [PLACEHOLDER if t == 0 else itos[t] for t in tokens.tolist()]
    return [next(words) if t == 0 else itos[t] for t in tokens.tolist()]


def read_by_chars(view: CharView, model, data: np.ndarray, strs: list[str], *, block_size: int,
                  stride: int | None, adapt: Adaptation | None = None,
                  partner: PartnerReading | None = None, device="cpu",
                  threads=None, reads: list[str] | None = None,
                  ) -> tuple[CharReading, np.ndarray]:  # fmt: skip
    """The characters of ``strs[1:]`` (the tokens of ``data``) as the model reads them: its
    distributions in :func:`.evaluate.token_probs`'s windows (learning as it reads with
    ``adapt``), mixed token by token with the n-gram ``partner`` (reading as it goes when it
    counts the split: :class:`..model.mixture.PartnerReading`), read
    by characters in parts of :data:`READ_ROWS` positions, each part starting a token early.
    ``reads``: the split's <unk> words, for a spelling that reads them as they come (the
    view built with them: :func:`.charview.reading_spelling`).
    Also returns the model's own nats for each token of ``data[1:]`` (what :func:`.evaluate.
    token_nll` and :func:`.evaluate.adaptive_nll` give, so the token figures need no pass of
    their own)."""
    nats = np.zeros(max(len(data) - 1, 0))
    targets = np.asarray(data, dtype=np.int64)[1:]

    def distributions():  # the model's, mixed with the partner's; its own nats kept
        for idx, p in token_probs(model, data, block_size, stride, adapt, device=device,
                                  threads=threads):  # fmt: skip
            nats[idx] = -np.log(p[np.arange(len(idx)), targets[idx]])
            yield idx, (p if partner is None else partner.mix(idx, p))

    parts: list[CharReading] = []
    last = None  # the previous part's last position and its distribution
    for idx, p in in_parts(distributions(), READ_ROWS):
        if last is not None:  # one token early: its characters' sides come with it
            idx, p = np.r_[last[0], idx], np.concatenate([last[1][None], p])
        spelled = reading_spelling(data, reads, idx) if reads is not None else None
        r = view.read(p, [strs[i + 1] for i in idx], spelled)
        if last is not None:
            r = CharReading(*(getattr(r, f.name)[len(strs[idx[0] + 1]) :] for f in fields(r)))
        parts.append(r)
        last = (idx[-1], p[-1])
    reading = CharReading(*(np.concatenate([getattr(r, f.name) for r in parts])
                            for f in fields(CharReading)))  # fmt: skip
    return reading, nats


def in_parts(pairs, rows: int):
    """The (positions, distributions) ``pairs`` gathered into parts of at least ``rows``
    positions (the last part: what is left)."""
    index, probs, held = [], [], 0
    for idx, p in pairs:
        index.append(idx)
        probs.append(p)
        held += len(idx)
        if held >= rows:
            yield np.concatenate(index), np.concatenate(probs)
            index, probs, held = [], [], 0
    if index:
        yield np.concatenate(index), np.concatenate(probs)


def symbols(alphabet: Alphabet, text: str) -> tuple[np.ndarray, np.ndarray]:
    """The text's symbol ids (a placeholder: the id past the alphabet) and which count."""
    sym = alphabet.encode(text)
    hole = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32) == ord(PLACEHOLDER)
    sym[hole] = len(alphabet)
    return sym, ~hole


def context_models(alphabet: Alphabet, sym: np.ndarray, valid: np.ndarray, start: int,
                   adaptive: bool, lines: tuple | None = None) -> list[np.ndarray]:  # fmt: skip
    """The context models' distributions (each (len(sym) - start, A)) at each position from
    ``start`` on: the orders of :data:`.charmix.ORDERS` (reading across the text's marks)
    backed off in turn, then the word contexts (the word so far after one, then two whole
    words) backed off to order 2, then, given the text's ``lines`` (:func:`line_structure`),
    the column model backed off to order 1."""
    A = len(alphabet)
    nxt = np.minimum(sym, A - 1)
    marks = mark_positions(alphabet, sym)
    counts = [cx.counts_before(cx.context_keys(sym, k, marks), nxt, start, A, adaptive, valid)
              for k in cx.ORDERS]  # fmt: skip
    uni = np.bincount(sym[:start][valid[:start]], minlength=A + 1)[:A].astype(np.float32) + 1
    chain = cx.backed_off(counts, np.broadcast_to(uni / uni.sum(), (len(sym) - start, A)))
    word = alphabet.masks()[1][nxt] & valid
    lower = chain[1]
    for k in (1, 2):
        n = cx.counts_before(cx.word_keys(sym, word, k), nxt, start, A, adaptive, valid)
        lower = cx.backed_off([n], lower)[0]
        chain.append(lower)
    if lines is not None:
        n = cx.counts_before(cx.column_keys(sym, *lines), nxt, start, A, adaptive, valid)
        chain.append(cx.backed_off([n], chain[0])[0])
    return chain


def break_symbols(alphabet: Alphabet) -> list[int]:
    """The alphabet's symbols that break a line: a line break, and its mark."""
    idx = alphabet.index()
    return [idx[c] for c in ("\n", WRAP) if c in idx]


def line_structure(alphabet: Alphabet, sym: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For each position, the line break its line began after (:func:`.charmix.columns`'s
    ``starts``), and which symbols stand in no column (the marks); None when the text has no
    line break (a text on one line: no column model). A line break's mark comes after the
    first word of the line it began (:mod:`wordgpt.corpus.marks`): the space before that
    word was the line break, known from the mark on."""
    if not break_symbols(alphabet):
        return None
    idx = alphabet.index()
    newline, wrap = sym == idx.get("\n", -1), sym == idx.get(WRAP, -1)
    pos = np.arange(len(sym))
    space = np.maximum.accumulate(np.where(sym == idx.get(" ", -1), pos, -1))  # the last space
    opened = np.full(len(sym), -1)  # at the position where a line's start is known, where it began
    opened[newline] = pos[newline]
    opened[wrap] = space[wrap]
    starts = np.r_[-1, np.maximum.accumulate(opened)[:-1]]
    return starts, mark_positions(alphabet, sym)


def mark_positions(alphabet: Alphabet, sym: np.ndarray) -> np.ndarray:
    """Which positions hold a capital's or a line's mark (:mod:`wordgpt.corpus.marks`)."""
    idx = alphabet.index()
    return np.isin(sym, [idx[c] for c in (CAP, UPPER, WRAP) if c in idx])


def features(alphabet: Alphabet, reading: CharReading, text: str, start: int,
             adaptive: bool) -> cx.Features:  # fmt: skip
    """The mixer's inputs for the characters of ``text`` from ``start`` on (those of
    ``reading``)."""
    sym, valid = symbols(alphabet, text)
    lines = line_structure(alphabet, sym)
    cm = context_models(alphabet, sym, valid, start, adaptive, lines)
    match = cx.match_predictions(sym, start, adaptive, valid)
    line_end = None
    if lines is not None:  # where the column model expects a line break
        line_end = cm[-1][:, break_symbols(alphabet)].sum(1) > cx.LINE_END
    return cx.features(cm, reading, match, alphabet.masks(), line_end)


def fit_mixer(alphabet: Alphabet, model, spec: CharSpec, cut: int, *, block_size: int,
              stride: int | None, device="cpu", threads=None) -> dict:  # fmt: skip
    """The mixer's weights fitted on the training tokens from ``cut`` on (the slice the GPT
    did not train on when the run has a partner), the context models and the partner
    counting the tokens before it, the slice's <unk> words spelled by a lexicon without
    those that only it has. Where the training split's <unk> words are not kept, their
    characters (and the one after each) are left out."""
    itos = spec.tokenizer.token_strings()
    train_strs = token_strings(itos, spec.train, spec.train_words)
    held = spec.train[cut - 1 :]
    spelling, words = None, ()
    if spec.train_words is not None:  # the words of train[cut:] (cut - 1's: context, seen)
        seen = int((spec.train[:cut] == 0).sum())
        words = spec.train_words[seen:]
        spelling = spec.tokenizer.spelling(frozenset(words) - set(spec.train_words[:seen]))
    view = CharView(spec.tokenizer, alphabet, words=words, spelling=spelling)
    partner = None
    if spec.partner is not None:
        kn = KneserNey(spec.train[:cut], spec.partner.kn.V, spec.partner.kn.order)
        partner = PartnerReading(Partner(kn, spec.partner.weight), held)
    reading, _ = read_by_chars(view, model, held, train_strs[cut - 1 :], block_size=block_size,
                            stride=stride, partner=partner, device=device,
                            threads=threads)  # fmt: skip
    before = "".join(train_strs[:cut])
    text = before + "".join(train_strs[cut:])
    f = features(alphabet, reading, text, len(before), adaptive=False)
    _, valid = symbols(alphabet, text[len(before) - 1 :])
    keep = valid[1:] & valid[:-1]  # a placeholder, and the character right after one
    f = cx.Features(*(getattr(f, k.name)[keep] for k in fields(cx.Features)))
    mixer = cx.Mixer(f.side_logit.shape[1], f.within.shape[1])
    mixer.fit(f)
    nats = mixer.nats(f)
    gpt = -np.log(reading.probs()[keep])
    return {
        **mixer.state_dict(),
        "alphabet": "".join(alphabet.symbols),
        "across_marks": True,  # its context models read across marks
        "unk_words_read": spec.train_words is not None,
        "fitted_on_chars": int(keep.sum()),
        "fitted_on_tokens": int(len(held) - 1),
        "held_out_bits_per_char": {
            "word_model": float(gpt.mean() / math.log(2)),
            "mixed": float(nats.mean() / math.log(2)),
        },
    }


def char_figures(model, data: np.ndarray, chars: int, spec: CharSpec, *, block_size: int,
                 stride: int | None, adapt: Adaptation | None, device="cpu", threads=None,
                 cut: int, lines: tuple[float, float] = (0.0, 0.0), fit_with=None,
                 ) -> tuple[dict, dict]:  # fmt: skip
    """The split's bits per character read by characters: the word model alone, mixed
    (static), and with ``adapt`` adaptive; the fit used (``"fit"``, new when ``spec`` had
    none; made with ``fit_with``, the model before it learned from the held-out slice in a
    warmed evaluation, else ``model``). Each adds the bits of the split's line breaks
    (``lines``: static, read as it goes; :mod:`..corpus.lines`), which the text read here
    has as spaces. And the GPT's own nats per token as it read them (``token_nats``, and
    ``adapted_nats`` adapting: :func:`.evaluate.evaluate`'s keywords)."""
    itos = spec.tokenizer.token_strings()
    train_text = "".join(token_strings(itos, spec.train, spec.train_words))
    split = token_strings(itos, np.asarray(data), spec.unk_words)
    fit = spec.fit
    alphabet = Alphabet(tuple(fit["alphabet"])) if fit else Alphabet.of(
        train_text.replace(PLACEHOLDER, "") + "".join(itos[1:]) + "".join(spec.tokenizer.rare)
    )  # fmt: skip
    view = CharView(spec.tokenizer, alphabet, words=spec.unk_words)
    if fit is None:
        fit = fit_mixer(alphabet, fit_with or model, spec, cut, block_size=block_size,
                        stride=stride, device=device, threads=threads)  # fmt: skip
    text = train_text + "".join(split)
    start = len(train_text) + len(split[0])
    escapes = None
    out, token_nats = {"fit": fit}, {}
    for adaptive in (False, True) if adapt else (False,):
        how = "adapted_nats" if adaptive else "token_nats"
        partner = None  # reading the split as it goes in the adaptive figure
        if spec.partner is not None:
            partner = PartnerReading(spec.partner, data, spec.train if adaptive else None)
        reading, token_nats[how] = read_by_chars(
            view, model, data, split, block_size=block_size, stride=stride, partner=partner,
            adapt=adapt if adaptive else None, device=device, threads=threads,
            reads=spec.unk_words if adaptive else None,
        )  # fmt: skip
        if escapes is None:  # a character the alphabet lacks: its escape, then its code point
            escapes = float(alphabet.novel(reading.symbols).sum() * alphabet.novel_bits)
            word_model = -np.log2(reading.probs()).sum()
            out["word_model_bits_per_char"] = float((word_model + escapes + lines[0]) / chars)
        f = features(alphabet, reading, text, start, adaptive)
        mixer = cx.Mixer.from_state(fit)
        nats = mixer.read(f, MIXER_LR) if adaptive else mixer.nats(f)
        key = "adaptive_bits_per_char" if adaptive else "bits_per_char"
        out[key] = float((nats.sum() / math.log(2) + escapes + lines[adaptive]) / chars)
    return out, token_nats


def by_characters(m, data_dir: Path, split: str, ngram: int | None, stride: int | None,
                  adapt: Adaptation | None, gpt=None) -> tuple[dict, dict]:  # fmt: skip
    """:func:`char_figures` for a loaded run ``m`` (:class:`.loaded.Model`), read by ``gpt``
    (a warmed copy of its GPT; the mixer is fitted by its own): its n-gram
    partner (``ngram`` None or its order; 0: none), the mixer fitted before
    (RUN/charmix.json, fitted now and written when missing or damaged), the split's <unk>
    words. Returns the figures with the mixer's fit summarised, and the GPT's nats per token
    (see :func:`char_figures`)."""
    if m.tokenizer.kind not in ("word", "char"):
        raise WordGPTError(f"--chars reads word or character tokens; this run has "
                           f"{m.tokenizer.kind} tokens")  # fmt: skip
    if ngram not in (None, 0) and not (m.partner_fit and ngram == m.partner_fit["order"]):
        raise WordGPTError("--chars mixes in the run's own n-gram partner: leave --ngram out, "
                           "or give 0 for none")  # fmt: skip
    if split != "val":  # its models count the training split: they would read what they know
        raise WordGPTError("--chars reads the val split (its character models count the "
                           "training split)")  # fmt: skip
    words = load_unk_words(data_dir, split)
    if words is None:
        raise WordGPTError(f"{data_dir} keeps no <unk> words of its {split} split (folders "
                           "prepared before they were kept): prepare it again to read it by "
                           "characters")  # fmt: skip
    partner = m.partner if ngram != 0 else None
    train = np.asarray(m.training_tokens())
    train_words = load_unk_words(m.data_dir, "train")
    if train_words is not None and len(train_words) != int((train == 0).sum()):
        raise DataError(f"{m.data_dir}/{UNK_WORDS['train']}: its words are not the training "
                        "split's <unk> words (another count); prepare the folder "
                        "again")  # fmt: skip
    path = m.run_dir / CHARMIX
    fit = read_fit(path, train_words is not None)
    spec = CharSpec(m.tokenizer, words, train, partner, fit, train_words)
    order = partner.kn.order if partner else NGRAM_ORDER
    counts = load_meta(data_dir)["splits"][split]
    chars = counts["chars"]
    total, where = machine_memory("cpu")  # the character models live in RAM
    if chars * BYTES_PER_CHAR > total:  # the features of every character are held at once
        raise WordGPTError(f"reading {chars:,} characters by characters takes about "
                           f"{chars * BYTES_PER_CHAR / 1e9:,.0f} GB, more than this {where}'s "
                           f"{total / 1e9:,.0f} GB: evaluate a shorter text (--text)")  # fmt: skip
    out, token_nats = char_figures(gpt or m.gpt, np.asarray(load_split(data_dir, split)), chars,
                       spec, block_size=m.gpt.cfg.block_size, stride=stride, adapt=adapt,
                       device=m.device, threads=m.thread_choice("batch"),
                       cut=gpt_tokens(len(spec.train), order),
                       lines=line_bits(counts), fit_with=m.gpt)  # fmt: skip
    fit = out.pop("fit")  # the weights: RUN/charmix.json, not every record
    out["mixer"] = {k: fit[k] for k in ("fitted_on_chars", "held_out_bits_per_char")}
    if spec.fit is None and m.run_dir.is_dir():
        try:
            atomic_write(path, json.dumps(fit) + "\n")
        except WordGPTError as e:
            log.warning(f"note: {path} was not written ({e})")
    return out, token_nats


def read_fit(path: Path, words_kept: bool) -> dict | None:
    """The mixer fitted before (None: none, damaged, or fitted with the training split's
    <unk> words where they are not kept (``words_kept``) or without them where they are,
    which is said)."""
    if not path.is_file():
        return None
    try:
        fit = json.loads(path.read_text(encoding="utf-8"))
        cx.Mixer.from_state(fit)
        if not isinstance(fit.get("alphabet"), str):
            raise ValueError("no alphabet")
        if not fit.get("across_marks") and set(fit["alphabet"]) & {CAP, UPPER, WRAP}:
            log.warning(f"note: {path} was fitted to context models that read the marks; "
                        "fitting the mixer again")  # fmt: skip
            return None
        if fit.get("unk_words_read", False) != words_kept:
            log.warning(f"note: {path} was fitted {'without' if words_kept else 'with'} the "
                        "training split's <unk> words, which its data folder "
                        f"{'now keeps' if words_kept else 'does not keep'}; fitting the "
                        "mixer again")  # fmt: skip
            return None
        return fit
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning(f"note: {path} is damaged ({e}); fitting the mixer again")
        return None
