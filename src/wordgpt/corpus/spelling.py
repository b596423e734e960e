"""What an ``<unk>`` costs: the bits to spell the word it stands for.

A word model that meets a word outside its vocabulary predicts ``<unk>``; the word's letters
are then still unknown to the reader. A character or BPE model has no such escape: it spells
every word. So that bits per character count every character's information whatever the
tokenizer, each ``<unk>`` is charged its model probability *plus* the cost of spelling the
word (its exact token text, a space attached included) with a character model fitted on the
training split, with an explicit end-of-word:

    bits(<unk> = w) = -log2 P_model(<unk> | context) - log2 P_spell(w, end)

The spelling model is an interpolated (Witten-Bell) character n-gram over the training
split's distinct tokens (types: rare words look like the other rare words, not like "the"),
backed off to a uniform choice among the characters seen, the end, and a *novel* character;
a novel character then costs log2 of the Unicode code points left (about 20 bits). It is a
proper distribution: for any history the probabilities of every next symbol sum to 1.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable

ORDER = 4
"""Characters of history (the longest context is ORDER - 1 characters)."""
BOS, END, NOVEL = "\x02", "\x03", "\x04"
CODE_POINTS = 0x110000


class Spelling:
    """A character n-gram model of how the training split's tokens are spelled."""

    def __init__(self, types: Iterable[str], order: int = ORDER):
        self.order = order
        self.counts: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(order)]
        alphabet: set[str] = set()
        for word in types:
            alphabet.update(word)
            padded = BOS * (order - 1) + word + END
            for i in range(order - 1, len(padded)):
                for k in range(order):  # context of the k characters before i
                    self.counts[k][padded[i - k : i]][padded[i]] += 1
        self.alphabet = frozenset(alphabet - {BOS, END, NOVEL})
        self.base = 1.0 / (len(self.alphabet) + 2)  # the characters seen, END and NOVEL
        self.totals = [{h: sum(c.values()) for h, c in level.items()} for level in self.counts]

    def prob(self, symbol: str, history: str) -> float:
        """P(symbol | the last ORDER - 1 characters of history): Witten-Bell interpolation
        from the longest context down to the uniform base."""
        p = self.base
        for k in range(self.order):
            h = history[len(history) - k :] if k else ""
            seen = self.counts[k].get(h)
            if not seen:
                continue
            n, t = self.totals[k][h], len(seen)
            p = (seen.get(symbol, 0) + t * p) / (n + t)
        return p

    def bits(self, word: str) -> float:
        """The bits to spell ``word`` and then say it ended."""
        history = BOS * (self.order - 1)
        total = 0.0
        for ch in word:
            if ch in self.alphabet:
                total -= math.log2(self.prob(ch, history))
            else:  # a character the training split never had
                total -= math.log2(self.prob(NOVEL, history))
                total += math.log2(CODE_POINTS - len(self.alphabet))
            history = history[1:] + ch
        return total - math.log2(self.prob(END, history))

    def symbols(self) -> list[str]:
        """Every symbol the model can predict (for checking that it sums to 1)."""
        return [*sorted(self.alphabet), END, NOVEL]
