"""A token model read one character at a time: its next-token distribution turned into exact
next-character probabilities, so that character-level models can be mixed with it honestly.

A word model predicts the next token; a reader of text meets one character at a time. After
the characters ``s`` of a token not yet ended, the token model's probability of each next
character ``c`` is the mass of the tokens that start with ``s + c`` against the mass of those
that start with ``s``; that ``s`` itself is the whole token has the mass of the token ``s``
(its end), and then the next character is the first one of the next token, drawn from the
model's next distribution, which sees ``s`` as the last token. The vocabulary sorted by
spelling with prefix sums gives each of these masses as one difference, for every character
at once.

**Where a token can end.** Tokens are cut by the tokenizer's pattern, so whether ``s`` goes
on or ends is a property of the next character: after a word (``\\w+``, a space before it or
not) a word character continues it and any other ends it; after a lone space (with
``space_prefix``) a visible character continues it (``" the"``, ``" ,"``) and whitespace ends
it; any other token (a punctuation mark, a newline, a case or line mark of raw text:
:mod:`wordgpt.corpus.marks`) has ended as soon as it is read. At such a state the
next character is predicted in two steps: first which side of the split it falls on (goes on
or ends), then which character within that side. The side "goes on" needs only this token's
distribution; the side "ends" needs the next token's, which is known exactly when the token
did end: a state's two-step distribution is a function of the text read so far, and its
probabilities sum to 1 (tested).

**``<unk>``.** The unknown token's mass is spread over spellings: the training split's rare
words (the spelling lexicon, each with its Good-Turing share) as if they were tokens, and the
rest over all strings by a plain model (any first character, then uniform over the characters
that continue a token and its end). Characters never seen in training are one of two escape
symbols (word or other), each charged ``log2`` of the code points left, as the spelling of
``<unk>`` is.

The product of a token's characters' probabilities is the token's own probability, up to what
the split removes: a token model gives some mass to token sequences the tokenizer never makes
(a word right after a word); read by characters that mass is spread over what can come, so
bits per character by characters are at most those by tokens (tested).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from ..corpus.spelling import CODE_POINTS, END, NOVEL

NOVEL_WORD, NOVEL_OTHER = "\x05", "\x06"
"""The alphabet's symbols for a character training never had: a word character, another."""
LAST = "\U0010ffff"  # after every string that starts with a given prefix

# How a state splits the next character: (side that goes on, side that ends).
CLOSED, WORD, SPACE = 0, 1, 2
"""State kinds: a token that has ended; a word not yet ended; a lone space (space_prefix)."""


def is_word_char(c: str) -> bool:
    return c == NOVEL_WORD or (c not in (NOVEL_OTHER,) and bool(re.match(r"\w", c)))


@dataclass(frozen=True)
class Alphabet:
    """The characters a character-level reader predicts: the training text's, and the two
    escapes for those it never had."""

    symbols: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> Alphabet:
        chars = sorted(set(text) - {NOVEL_WORD, NOVEL_OTHER})
        return cls((*chars, NOVEL_WORD, NOVEL_OTHER))

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def novel_bits(self) -> float:
        """What naming a character the alphabet lacks costs after its escape symbol."""
        return math.log2(CODE_POINTS - len(self.symbols))

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.symbols)}

    @staticmethod
    def id_of(c: str, index: dict[str, int]) -> int:
        """A character's symbol id in ``index`` (:meth:`index`); one it lacks: its escape's."""
        got = index.get(c)
        return got if got is not None else index[NOVEL_WORD if re.match(r"\w", c) else NOVEL_OTHER]

    def encode(self, text: str) -> np.ndarray:
        """Symbol ids of ``text`` (a character it lacks: the escape of its kind), each distinct
        character looked up once."""
        points, inverse = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32),
                                    return_inverse=True)  # fmt: skip
        idx = self.index()
        ids = np.array([self.id_of(chr(p), idx) for p in points.tolist()], dtype=np.int64)
        return ids[inverse]

    def novel(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are escapes."""
        return ids >= len(self.symbols) - 2

    def masks(self) -> np.ndarray:
        """(3, A) bool: per state kind, the characters that continue the token (CLOSED: the
        word characters, the split used at a token's start)."""
        word = np.array([is_word_char(c) for c in self.symbols])
        visible = np.array(
            [c in (NOVEL_WORD, NOVEL_OTHER) or not c.isspace() for c in self.symbols]
        )
        return np.stack([word, word, visible])


def state_kind(s: str, space_prefix: bool, char_tokens: bool) -> int:
    """The kind of state after reading ``s``, the start of a token."""
    if char_tokens or not s:
        return CLOSED
    if space_prefix and s == " ":
        return SPACE
    body = s[1:] if space_prefix and s[0] == " " else s
    return (
        WORD if body and all(is_word_char(c) for c in body) and body[0] != NOVEL_OTHER else CLOSED
    )


class CharView:
    """The character-level reading of a token model over one tokenizer's vocabulary (word or
    character tokens; see the module's docstring). :meth:`read` turns the token model's
    distributions along a text into, per character, the probability of its side of the split
    and its distribution within that side."""

    def __init__(self, tokenizer, alphabet: Alphabet, words: list[str] = (), spelling=None):
        kind = getattr(tokenizer, "kind", "")
        if kind not in ("word", "char"):
            raise ValueError(f"a character view needs word or character tokens, not {kind}")
        self.char_tokens = kind == "char"
        self.space_prefix = bool(getattr(tokenizer, "space_prefix", False))
        self.alphabet = alphabet
        self.sym = alphabet.index()
        self.masks = alphabet.masks()  # (3, A)
        itos = tokenizer.token_strings()
        self.unk = 0
        self.spelling = tokenizer.spelling() if spelling is None else spelling  # or the fit's
        lam = self.spelling.lexicon_weight
        self.strings, self.token_of, self.coef, self.lexical, self.read_at = spellings(
            itos, self.spelling.lexicon, lam, words
        )
        self.unk_rest = 1.0 - lam  # <unk>'s mass left to the spelling's character model
        # the spelling model's symbols as the alphabet's (its escape: the state's escape)
        spelled = {c: i for i, c in enumerate(self.spelling.symbols())}
        self._end, self._novel = spelled[END], spelled[NOVEL]
        left = CODE_POINTS - len(self.spelling.alphabet)
        self._spell_map = [(a, spelled.get(c)) for a, c in enumerate(alphabet.symbols)]
        self._novel_share = 1.0 / left  # a character it never had: one of those left
        self._nodes: dict[str, int] = {}
        self._lo: list[np.ndarray] = []  # per node: each symbol's child range
        self._hi: list[np.ndarray] = []
        self._exact: list[int] = []
        self._kind: list[int] = []
        self._unk_child: list[np.ndarray | None] = []  # <unk>'s spelled mass of each child
        self._unk_end: list[float] = []  # and of the node's end
        self._tokens: dict[str, list[int]] = {}

    # ------------------------------------------------------------ the trie, lazily

    def _range(self, prefix: str) -> tuple[int, int]:
        return bisect_left(self.strings, prefix), bisect_left(self.strings, prefix + LAST)

    def _node(self, s: str) -> int:
        if s in self._nodes:
            return self._nodes[s]
        A, syms = len(self.alphabet), self.alphabet.symbols
        lo, hi = np.zeros(A, dtype=np.int64), np.zeros(A, dtype=np.int64)
        for a, c in enumerate(syms):
            if c not in (NOVEL_WORD, NOVEL_OTHER):
                lo[a], hi[a] = self._range(s + c)
        i = bisect_left(self.strings, s)
        exact = i if s and i < len(self.strings) and self.strings[i] == s else -1
        self._nodes[s] = len(self._lo)
        self._lo.append(lo)
        self._hi.append(hi)
        self._exact.append(exact)
        self._kind.append(state_kind(s, self.space_prefix, self.char_tokens))
        self._unk_child.append(None)  # filled for many nodes at once: _spell
        self._unk_end.append(0.0)
        return self._nodes[s]

    def _spelled(self, nxt: np.ndarray, kind: int, root: bool) -> tuple[np.ndarray, float]:
        """The spelling model's next-symbol probabilities ``nxt`` as the alphabet's: each
        child's share and the end's, at a state of ``kind`` (the root: every character)."""
        A = len(self.alphabet)
        child = np.zeros(A)
        for a, j in self._spell_map:
            c = self.alphabet.symbols[a]
            if c in (NOVEL_WORD, NOVEL_OTHER):
                child[a] = nxt[self._novel] * (0.5 if root else 1.0)
            else:
                child[a] = nxt[j] if j is not None else nxt[self._novel] * self._novel_share
        if root:
            return child, 0.0
        if kind == CLOSED:  # an ended token: nothing goes on, the end takes it all
            return np.zeros(A), 1.0
        return child * self.masks[kind], float(nxt[self._end])

    def _spell(self, nodes: list[int]) -> None:
        """Fill <unk>'s spelled masses of ``nodes`` (prefixes first): the spelling's
        probability of the node's prefix times that of each next symbol."""
        todo = [n for n in nodes if self._unk_child[n] is None]
        if not todo:
            return
        wanted = set(todo)
        strings = {n: s for s, n in self._nodes.items() if n in wanted}
        nxt = self.spelling.next_probs([strings[n] for n in todo])
        for n, row in zip(todo, nxt, strict=True):
            s = strings[n]
            if not s:
                prefix = 1.0
            else:
                parent = self._nodes[s[:-1]]
                self._spell([parent])
                prefix = float(self._unk_child[parent][self._symbol(s[-1])])
            child, end = self._spelled(row, self._kind[n], not s)
            self._unk_child[n], self._unk_end[n] = prefix * child, prefix * end

    def _symbol(self, ch: str) -> int:
        return self.alphabet.id_of(ch, self.sym)

    def path(self, token: str) -> list[int]:
        """The nodes of ``token``'s prefixes, "" to the whole token (len(token) + 1)."""
        if token not in self._tokens:
            self._tokens[token] = [self._node(token[:j]) for j in range(len(token) + 1)]
        return self._tokens[token]

    def read(self, probs: np.ndarray, tokens: list[str], reads: tuple | None = None) -> CharReading:
        """The characters of ``tokens`` (the text's tokens at the positions whose next-token
        distributions are the rows of ``probs``, (n, V)), each as its side's probability and
        its distribution within that side (a :class:`CharReading`). The first token's first
        character is read as a token's start (its side came with the token before, which is
        not here: a caller reading a text in parts starts each part one token early and drops
        that token's characters). ``reads``: the spelling that reads (:func:`reading_spelling`)."""
        n = len(tokens)
        probs = np.asarray(probs, dtype=np.float64)
        mass = probs[:, self.token_of] * self.coef  # (n, S)
        unk = probs[:, self.unk] * self.unk_rest  # (n,)
        if reads is not None:  # <unk>'s mass: the static spelling's share, and the words read
            static, words = reads
            mass[:, self.lexical] *= static[:, None]
            mass[:, self.read_at] += probs[:, self.unk][:, None] * words
            unk = unk * static
        cs = np.concatenate([np.zeros((n, 1)), np.cumsum(mass, axis=1)], axis=1)  # (n, S + 1)
        paths = [self.path(t) for t in tokens]
        self._spell(sorted({nd for path in paths for nd in path}))
        lo, hi = np.stack(self._lo), np.stack(self._hi)  # (nodes, A)
        exact, kinds = np.array(self._exact), np.array(self._kind)
        unk_child = np.stack([c if c is not None else np.zeros(len(self.alphabet))
                              for c in self._unk_child])  # fmt: skip
        unk_end = np.array(self._unk_end)

        def children(rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
            """(m, A): the mass of each next character at these (token row, node) states."""
            c = cs[rows[:, None], hi[nodes]] - cs[rows[:, None], lo[nodes]]
            return c + unk[rows][:, None] * unk_child[nodes]

        def ends(rows: np.ndarray, nodes: np.ndarray) -> np.ndarray:
            ex = np.maximum(exact[nodes], 0)
            e = np.where(exact[nodes] >= 0, cs[rows, ex + 1] - cs[rows, ex], 0.0)
            return e + unk[rows] * unk_end[nodes]

        # every character: the token row it is read at, its node, its symbol, and whether it
        # is the first of its token (read from the next-token distribution)
        rows, nodes, syms, first = [], [], [], []
        for r, (tok, path) in enumerate(zip(tokens, paths, strict=True)):
            for j, ch in enumerate(tok):
                rows.append(r)
                nodes.append(path[j])
                syms.append(self._symbol(ch))
                first.append(j == 0)
        rows, nodes, syms = np.array(rows), np.array(nodes), np.array(syms)
        first = np.array(first, dtype=bool)
        root = self._nodes[""]
        m, A = len(rows), len(self.alphabet)
        split = np.zeros(m, dtype=np.int64)  # the state kind whose split each character uses
        p_on = np.zeros(m)  # P(the side that goes on)
        p_end = np.zeros(m)  # P(the side that ends), computed apart: 1 - p_on loses it
        within = np.zeros((m, A))  # the distribution within the character's own side

        # characters inside a token (an open state: WORD or SPACE)
        inner = ~first
        if inner.any():
            r, nd = rows[inner], nodes[inner]
            ch = children(r, nd)  # (k, A)
            on, e = ch.sum(1), ends(r, nd)
            split[inner] = kinds[nd]
            p_on[inner], p_end[inner] = on / (on + e), e / (on + e)
            within[inner] = ch / on[:, None]

        # each token's first character: after an ended token from this distribution alone;
        # after an open one, its side (the end) from the token before, then within it this one
        starts = np.flatnonzero(first)
        fr = rows[starts]
        f = children(fr, np.full(len(fr), root))  # (k, A) the first-character masses
        f = f / f.sum(1, keepdims=True)
        prev_nodes = np.array([paths[r - 1][-1] if r else root for r in fr], dtype=np.int64)
        prev_open = kinds[prev_nodes] != CLOSED
        kind_first = np.where(prev_open, kinds[prev_nodes], CLOSED)
        split[starts] = kind_first
        mask = self.masks[kind_first]  # (k, A) the side that goes on
        closed = ~prev_open
        if closed.any():  # the sides from this distribution, and within the character's own
            i = starts[closed]
            fm = f[closed]
            mk = mask[closed]
            p_on[i], p_end[i] = (fm * mk).sum(1), (fm * ~mk).sum(1)
            own = np.where(mk[np.arange(len(i)), syms[i]][:, None], mk, ~mk)
            w = fm * own
            within[i] = w / w.sum(1, keepdims=True)
        if prev_open.any():  # the token before ended here: its end against its going on
            i = starts[prev_open]
            pr, pn = fr[prev_open] - 1, prev_nodes[prev_open]
            on, e = children(pr, pn).sum(1), ends(pr, pn)
            p_on[i], p_end[i] = on / (on + e), e / (on + e)
            w = f[prev_open] * ~mask[prev_open]
            within[i] = w / w.sum(1, keepdims=True)
        on_side = self.masks[split, syms]
        return CharReading(syms, split, p_on, p_end, within, on_side)


@dataclass
class CharReading:
    """Characters as a token model reads them: per character its symbol, the state kind whose
    split it falls under, the probability of the split's side that goes on, whether the
    character is on that side, and its distribution within its own side (m, A). The two
    sides' probabilities are kept apart (``p_on + p_end == 1``), as either can be too near 1
    for the other to be its complement in floating point."""

    symbols: np.ndarray
    split: np.ndarray
    p_on: np.ndarray
    p_end: np.ndarray
    within: np.ndarray
    on_side: np.ndarray

    def probs(self) -> np.ndarray:
        """Each character's probability."""
        side = np.where(self.on_side, self.p_on, self.p_end)
        return side * self.within[np.arange(len(self.symbols)), self.symbols]


def spellings(itos: list[str], lexicon: dict, lam: float, words=()) -> tuple:
    """The strings a token can be spelled as, sorted: every token but <unk> (its own
    probability), the spelling's lexicon (``lam`` times its share of <unk>'s) and ``words``
    (the split's <unk> words, nothing until read: :func:`reading_spelling`). Returns the
    strings, each one's token, its coefficient, which are the lexicon's, and where each of
    ``words`` is."""
    entries = {t: (i, 1.0, False) for i, t in enumerate(itos) if i and t}
    entries.update({w: (0, lam * p, True) for w, p in lexicon.items() if w and w not in entries})
    entries.update({w: (0, 0.0, True) for w in words if w and w not in entries})
    strings = sorted(entries)
    at = {w: i for i, w in enumerate(strings)}
    token, coef, lexical = (
        zip(*(entries[w] for w in strings), strict=True) if strings else ((), (), ())
    )
    read_at = np.array([at[w] for w in dict.fromkeys(words) if w in at], dtype=np.int64)
    return (strings, np.array(token, dtype=np.int64), np.array(coef, dtype=np.float64),
            np.array(lexical, dtype=bool), read_at)  # fmt: skip


def reading_spelling(data: np.ndarray, words: list[str], rows: np.ndarray) -> tuple:
    """The spelling that reads (as :meth:`..corpus.spelling.Spelling.read_bits`: after n
    <unk> words, t of them distinct and c(w) of them ``w``, ``P(w) = (c(w) + t P_spell(w)) /
    (n + t)``) at
    the positions ``rows`` of ``data`` (each predicting the token after it): per row the
    static spelling's share ``t / (n + t)`` (1 before any) and each distinct word's
    ``c(w) / (n + t)``, in the order of ``dict.fromkeys(words)``."""
    where = np.flatnonzero(np.asarray(data) == 0)  # the <unk> tokens, words[i] at where[i]
    ids = {w: i for i, w in enumerate(dict.fromkeys(words))}
    k = np.searchsorted(where, np.asarray(rows) + 1)  # the <unk> words before each row's token
    counts = np.zeros((len(rows), len(ids)))
    seen = np.zeros(len(ids))
    done = 0
    for r in np.argsort(k, kind="stable"):
        for w in words[done : k[r]]:
            seen[ids[w]] += 1
        done = max(done, int(k[r]))
        counts[r] = seen
    n, t = k.astype(np.float64), (counts > 0).sum(1).astype(np.float64)
    static = np.where(n > 0, t / np.maximum(n + t, 1), 1.0)
    return static, counts / np.maximum(n + t, 1)[:, None]


def next_char_probs(view: CharView, p: np.ndarray, s: str, p_next: np.ndarray | None = None):
    """The distribution (A,) of the character after ``s``, the start of a token whose
    distribution is ``p``; ``p_next``: the next token's distribution should ``s`` be the
    whole token (None: the characters that end ``s`` are NaN). One string at a time, by
    the definition (sums over the spellings, the spelling model's :meth:`prob` one
    symbol at a time): the plain reference of what :meth:`CharView.read` computes for a whole
    text at once, which tests compare it with."""
    syms = view.alphabet.symbols
    sp = view.spelling
    escape = (NOVEL_WORD, NOVEL_OTHER)

    def spell(prefix: str) -> float:  # the character model's P(a word starts with prefix)
        q = 1.0
        for j, c in enumerate(prefix):
            if j and state_kind(prefix[:j], view.space_prefix, view.char_tokens) == CLOSED:
                return 0.0
            q *= sp.prob(c if c in sp.alphabet else NOVEL, prefix[:j])
            q *= 1.0 if c in sp.alphabet else view._novel_share
        return q

    def starting(q: np.ndarray, prefix: str) -> float:
        m = sum(q[t] * k for w, t, k in zip(view.strings, view.token_of, view.coef,
                                             strict=True) if w.startswith(prefix))  # fmt: skip
        return m + q[view.unk] * view.unk_rest * spell(prefix)

    def first(q: np.ndarray) -> np.ndarray:
        novel = q[view.unk] * view.unk_rest * sp.prob(NOVEL, "") / 2
        f = np.array([novel if c in escape else starting(q, c) for c in syms])
        return f / f.sum()

    kind = state_kind(s, view.space_prefix, view.char_tokens)
    if not s:
        return first(p)
    if kind == CLOSED:
        return first(p_next)
    on = view.masks[kind]
    unk = p[view.unk] * view.unk_rest * spell(s)
    cont = np.array([
        (unk * sp.prob(NOVEL, s) if c in escape else starting(p, s + c)) if on[a] else 0.0
        for a, c in enumerate(syms)
    ])  # fmt: skip
    exact = sum(p[t] * k for w, t, k in zip(view.strings, view.token_of, view.coef,
                                             strict=True) if w == s)  # fmt: skip
    e = exact + unk * sp.prob(END, s)
    if p_next is None:  # the side that ends is not known: only the side that goes on
        return np.where(on, cont / (cont.sum() + e), np.nan)
    ended = first(p_next) * ~on
    return cont / (cont.sum() + e) + e / (cont.sum() + e) * ended / ended.sum()
