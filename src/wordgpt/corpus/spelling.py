"""What an ``<unk>`` costs: the bits to spell the word it stands for.

A word model that meets a word outside its vocabulary predicts ``<unk>``; the word's letters
are then still unknown to the reader. A character or BPE model has no such escape: it spells
every word. So that bits per character count every character's information whatever the
tokenizer, each ``<unk>`` is charged its model probability *plus* the cost of spelling the
word (its exact token text, a space attached included):

    bits(<unk> = w) = -log2 P_model(<unk> | context) - log2 P_spell(w)

``P_spell`` is fitted on the training split and is a proper distribution over strings, a
mixture of two parts:

- the **lexicon**: the training words that are not in the vocabulary (seen fewer than
  ``min_count`` times: an ``<unk>`` in training too), each with its Good-Turing share;
- the **character model**: an interpolated (Witten-Bell) character n-gram over the training
  split's distinct tokens (types: rare words look like the other rare words, not like "the"),
  with an explicit end of word, backed off to a uniform choice among the characters seen, the
  end, and a *novel* character, which then costs log2 of the Unicode code points left (about
  20 bits). For any history its next-symbol probabilities sum to 1.

    P_spell(w) = lam * P_lexicon(w) + (1 - lam) * P_char(w)

``lam`` is Good-Turing's estimate of how often an unknown word of new text is one of the
training split's rare words rather than a word it never had: their expected shares are
``sum over rare words of r*/N`` against ``N1/N`` (``r* = (r + 1) N_{r+1} / N_r``; ``N_r``
words seen r times in N tokens). On Don Quixote at ``--min-count 2`` that is about 0.39:
two in five of the val split's unknown words are rare training words.

Everything is computed with arrays (one pass over all the words at once), so a corpus with
millions of rare words, or one word of millions of characters, is spelled in seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import WordGPTError

ORDER = 5
"""Characters of history plus one (the longest context is ORDER - 1 characters), of a
tokenizer made now (chosen on Don Quixote and Jane Eyre: their val splits' <unk> words cost
35,647 and 23,300 bits at order 3, 34,456 and 21,789 at 4, 34,160 and 21,167 at 5, 34,741
and 21,425 at 6)."""
FIRST_ORDER = 4
"""The order of a tokenizer saved before its order was (its data folder's figures were
counted with it)."""
BOS, END, NOVEL = "\x02", "\x03", "\x04"
CODE_POINTS = 0x110000
_BOS, _END, _NOVEL = 0, 1, 2  # symbol ids; the alphabet's characters are 3, 4, ...


def lexicon_weights(counts: dict[str, int], rare: Iterable[str]) -> tuple[float, list[float]]:
    """Good-Turing's share of new text's unknown words that are ``rare`` training words
    (``lam``), and each rare word's share of those, from every training type's count."""
    n = sum(counts.values())
    of_count = Counter(counts.values())
    rare = list(rare)

    def adjusted(r: int) -> float:
        return (r + 1) * of_count[r + 1] / of_count[r] if of_count[r + 1] else float(r)

    shares = [adjusted(counts.get(w, 1)) for w in rare]
    known, new = sum(shares) / max(n, 1), of_count[1] / max(n, 1)
    lam = known / (known + new) if known + new > 0 else 0.0
    total = sum(shares) or 1.0
    return lam, [s / total for s in shares]


class Spelling:
    """How the training split's tokens are spelled: a lexicon of its rare words and a
    character n-gram (see the module's docstring)."""

    def __init__(
        self,
        types: Iterable[str],
        order: int = ORDER,
        lexicon: Sequence[str] = (),
        lexicon_probs: Sequence[float] = (),
        lexicon_weight: float = 0.0,
    ):
        types = [t for t in types if t]
        self.alphabet = frozenset("".join(types)) - {BOS, END, NOVEL}
        self.chars = np.array(sorted(ord(c) for c in self.alphabet), dtype=np.int64)
        self.radix = len(self.chars) + 4  # a digit per context symbol: its id + 1 (0: none)
        # a context must fit an int64: about 6,000 distinct characters at order 5, 46,000 at
        # 4, and all of Unicode's code points at 2, so the order drops until it fits
        while order > 1 and self.radix**order >= 2**62:
            order -= 1
        self.order = order
        self.base = 1.0 / (len(self.alphabet) + 2)  # the characters seen, END and NOVEL
        ids, targets = self._encode(types)
        grams, counts = np.unique(self._grams(ids, targets), return_counts=True)
        self.tables = [self._table(grams, counts, k) for k in range(order)]
        self.lexicon_weight = float(lexicon_weight) if lexicon else 0.0
        probs = list(lexicon_probs) or [1.0 / max(len(lexicon), 1)] * len(lexicon)
        self.lexicon = dict(zip(lexicon, probs, strict=True))

    # ------------------------------------------------------------ fitting

    def _encode(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All ``words`` as one array of symbol ids, each padded with ORDER - 1 BOS before
        it and END after; and the positions of the symbols to predict (each word's
        characters and its END)."""
        pad = self.order - 1
        lengths = np.array([len(w) for w in words], dtype=np.int64)
        codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32)
        where = np.searchsorted(self.chars, codes)
        chars = np.append(self.chars, -1)  # where == len(chars): a code past every character
        known = chars[where] == codes
        sym = np.where(known, where + 3, _NOVEL).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths + pad + 1)])[:-1]  # in the padded array
        ids = np.full(int((lengths + pad + 1).sum()), _BOS, dtype=np.int64)
        inside = np.repeat(starts + pad, lengths) + (
            np.arange(len(codes)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        ids[inside] = sym
        ends = starts + pad + lengths
        ids[ends] = _END
        targets = np.sort(np.concatenate([inside, ends]))
        return ids, targets

    def _grams(self, ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each target with its ORDER - 1 ids of history as one integer (the nearest id the
        most significant digit, each digit the id + 1): all that its probability depends
        on, at every order (a shorter context is a prefix: integer division)."""
        ctx = np.zeros(len(targets), dtype=np.int64)
        for k in range(1, self.order):
            ctx = ctx * self.radix + ids[targets - k] + 1
        return ctx * self.radix + ids[targets]

    def _split(self, grams: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(the context of k ids, that context and the symbol) of each gram."""
        ctx = grams // self.radix // self.radix ** (self.order - 1 - k)
        return ctx, ctx * self.radix + grams % self.radix

    def _table(self, grams: np.ndarray, counts: np.ndarray, k: int) -> dict[str, np.ndarray]:
        """The counts of order k: each (context, symbol) pair's; each context's total n and
        its number of distinct symbols t."""
        _, full = self._split(grams, k)
        pairs, which = np.unique(full, return_inverse=True)
        pair_counts = np.bincount(which, weights=counts).astype(np.int64)
        contexts, of_pair = np.unique(pairs // self.radix, return_inverse=True)
        n = np.bincount(of_pair, weights=pair_counts).astype(np.int64)
        t = np.bincount(of_pair, minlength=len(contexts))
        return {"pairs": pairs, "pair_counts": pair_counts, "contexts": contexts, "n": n, "t": t}

    # ------------------------------------------------------------ probabilities

    def _probs(self, ids: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """P(symbol | history) of every target: Witten-Bell interpolation from the uniform
        base up to the longest context (a context never seen leaves the shorter one's),
        computed once for each distinct gram."""
        grams, inverse = np.unique(self._grams(ids, targets), return_inverse=True)
        p = np.full(len(grams), self.base)
        for k, tab in enumerate(self.tables):
            if not len(tab["contexts"]):
                continue
            ctx, full = self._split(grams, k)
            i = np.minimum(np.searchsorted(tab["contexts"], ctx), len(tab["contexts"]) - 1)
            j = np.minimum(np.searchsorted(tab["pairs"], full), len(tab["pairs"]) - 1)
            c = np.where(tab["pairs"][j] == full, tab["pair_counts"][j], 0)
            n, t = tab["n"][i], tab["t"][i]
            p = np.where(tab["contexts"][i] == ctx, (c + t * p) / np.maximum(n + t, 1), p)
        return p[inverse]

    def char_bits(self, words: Sequence[str]) -> np.ndarray:
        """The character model's bits to spell each word and then say it ended."""
        if not words:
            return np.zeros(0)
        ids, targets = self._encode(list(words))
        bits = -np.log2(self._probs(ids, targets))
        novel = ids[targets] == _NOVEL
        bits[novel] += math.log2(CODE_POINTS - len(self.alphabet))
        lengths = np.array([len(w) + 1 for w in words], dtype=np.int64)  # with END
        return np.add.reduceat(bits, np.concatenate([[0], np.cumsum(lengths)[:-1]]))

    def bits_many(self, words: Sequence[str]) -> np.ndarray:
        """The bits to spell each of ``words``: -log2 of the mixture of the lexicon and the
        character model."""
        char = self.char_bits(words)
        if not self.lexicon_weight:
            return char
        lam = self.lexicon_weight
        lex = np.array([self.lexicon.get(w, 0.0) for w in words])
        return -np.log2(lam * lex + (1 - lam) * np.exp2(-char))

    def read_bits(self, words: Sequence[str]) -> np.ndarray:
        """The bits to spell each of ``words`` in turn by a model that remembers the words
        before it, as a compressor reads (adaptive evaluation): after n words, t of them
        distinct and c(w) of them ``w``, P(w) = (c(w) + t P_spell(w)) / (n + t), Witten-Bell's
        mixture of the words read and this model, a proper distribution at every step; the
        first word is this model's alone."""
        static = self.bits_many(words)
        seen: Counter[str] = Counter()
        out = np.empty(len(words))
        for n, (w, b) in enumerate(zip(words, static, strict=True)):
            t = len(seen)
            cached = math.log2(seen[w]) if seen[w] else -math.inf
            out[n] = b if not n else math.log2(n + t) - np.logaddexp2(cached, math.log2(t) - b)
            seen[w] += 1
        return out

    def bits(self, word: str) -> float:
        """The bits to spell ``word`` (and say it ended)."""
        return float(self.bits_many([word])[0])

    def prob(self, symbol: str, history: str) -> float:
        """The character model's P(symbol | the last ORDER - 1 characters of history)."""
        pad = self.order - 1
        context = (BOS * pad + history)[-pad:] if pad else ""
        word = [self._symbol(c) for c in context] + [self._symbol(symbol)]
        ids = np.array(word, dtype=np.int64)
        return float(self._probs(ids, np.array([len(ids) - 1]))[0])

    def next_probs(self, histories: Sequence[str]) -> np.ndarray:
        """(len(histories), len(symbols())): :meth:`prob` of every symbol after each history
        at once (a history is a word's characters so far, without the BOS padding)."""
        S, pad, n = len(self.symbols()), self.order - 1, len(histories)
        if not n:
            return np.zeros((0, S))
        sym_ids = np.array([self._symbol(c) for c in self.symbols()], dtype=np.int64)
        ctx = np.array(
            [[self._symbol(c) for c in (BOS * pad + h)[-pad:]] for h in histories]
            if pad else [[] for _ in histories],
            dtype=np.int64,
        ).reshape(n, pad)  # fmt: skip
        blocks = np.concatenate([np.repeat(ctx, S, axis=0), np.tile(sym_ids, n)[:, None]], axis=1)
        targets = np.arange(n * S) * self.order + pad
        return self._probs(blocks.ravel(), targets).reshape(n, S)

    def _symbol(self, ch: str) -> int:
        if ch == BOS:
            return _BOS
        if ch == END:
            return _END
        i = int(np.searchsorted(self.chars, ord(ch)))
        return i + 3 if i < len(self.chars) and self.chars[i] == ord(ch) else _NOVEL

    def symbols(self) -> list[str]:
        """Every symbol the character model can predict (for checking that it sums to 1)."""
        return [*sorted(self.alphabet), END, NOVEL]


def lexicon_settings(d: dict, rare: list) -> dict:
    """The spelling lexicon's settings and the character model's order in a tokenizer's
    dict, checked (a tokenizer written before the lexicon had none: weight 0; before the
    order was kept: :data:`FIRST_ORDER`)."""
    lam, probs = d.get("lexicon_weight", 0.0), d.get("rare_probs")
    order = d.get("spell_order", FIRST_ORDER)
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= 8:
        raise WordGPTError("the tokenizer's spell_order is not a whole number from 1 to 8")
    if not isinstance(lam, int | float) or isinstance(lam, bool) or not 0 <= lam < 1:
        raise WordGPTError("the tokenizer's lexicon_weight is not a number in [0, 1)")
    if probs is not None and (
        not isinstance(probs, list)
        or len(probs) != len(rare)
        or not all(isinstance(p, int | float) and p >= 0 for p in probs)
    ):
        raise WordGPTError("the tokenizer's rare_probs do not match its rare words")
    return {"lexicon_weight": float(lam), "rare_probs": probs, "spell_order": order}
