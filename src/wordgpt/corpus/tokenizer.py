"""Tokenizers: word-level, character-level and byte-level BPE, each saved as one JSON file.

The tokenizer knows nothing about torch. Every tokenizer maps text to a list of ids and back,
and ``decode(encode(text)) == text`` holds for any text made of known tokens (a tokenizer
that marks raw text writes line breaks inside paragraphs as spaces, coded by its line model:
:mod:`.lines`).
Word and char vocabularies are ordered by frequency (ties by the token itself), with
``<unk>`` at id 0, so that the same text always gives the same ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..errors import WordGPTError
from .cleaning import Normalizer, chunks
from .lines import LineCounts, as_spaces, break_points, line_counts, lines_from_list, wrap
from .marks import mark, unmark
from .spelling import ORDER, Spelling, lexicon_settings, lexicon_weights

UNK = "<unk>"

# Words, single punctuation marks and single whitespace characters, as the original notebook
# splits text.
WORD_PATTERN = re.compile(r"\w+|\S|\s")
# The same tokens, with one space attached to the word or mark that follows it.
SPACE_PREFIX_PATTERN = re.compile(r" ?\w+| ?[^\w\s]|\s")


class Tokenizer(Protocol):
    kind: str
    normalizer: Normalizer
    marks: bool

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int], before: str = "") -> str: ...

    def unknown(self, text: str) -> Counter[str]: ...

    def unknown_words(self, text: str) -> list[str]: ...

    def spelling(self, without: frozenset[str] = frozenset()) -> Spelling: ...

    def to_dict(self) -> dict: ...


class TextSteps:
    """What every tokenizer does to text around its ids: cleaning and marks, then undoing."""

    normalizer: Normalizer
    marks: bool  # capitals and line breaks written as marks (:mod:`.marks`)
    lines = None
    """With marks: the line model's counts (:mod:`.lines`), the line breaks inside paragraphs
    written as spaces; None: as marks (a tokenizer written before the line model)."""

    def prepared(self, text: str) -> str:
        """``text`` as the tokenizer splits it: cleaned, and marked when it marks."""
        text = self.normalizer(text)
        if not self.marks:
            return text
        return mark(text if self.lines is None else as_spaces(text))

    def _lines_dict(self, d: dict) -> dict:
        d = {**d, "marks": True} if self.marks else d
        return {**d, "lines": self.lines.tolist()} if self.lines is not None else d

    def unmarked(self, text: str, before: str = "") -> str:
        """The text of decoded tokens: their marks undone when it writes them, and its lines
        broken as the line model finds likeliest (:func:`.lines.wrap`; ``before``: the text
        shown before it, such as a prompt)."""
        if not self.marks:
            return text
        return unmark(text) if self.lines is None else wrap(unmark(text), self.lines, before)


class VocabTokenizer(TextSteps):
    """A closed vocabulary over tokens cut by a splitting function (shared by word and char)."""

    kind = "vocab"

    def __init__(
        self,
        itos: list[str],
        normalizer: Normalizer | None = None,
        rare: list[str] = (),
        *,
        lexicon_weight: float = 0.0,
        rare_probs: list[float] | None = None,
        marks: bool = False,
        lines=None,
        spell_order: int = ORDER,
    ):
        if not itos or itos[0] != UNK:
            raise WordGPTError("a vocabulary must start with <unk>")
        self.normalizer = normalizer or Normalizer()
        self.rare = list(rare)
        """Training tokens left out of the vocabulary (by min_count, max_vocab): with the
        vocabulary's own, they are what the spelling model of <unk> is fitted on, and they
        are its lexicon."""
        self.lexicon_weight = float(lexicon_weight)
        """How often an unknown word of new text is one of ``rare`` (Good-Turing's estimate,
        made when the vocabulary was: :func:`.spelling.lexicon_weights`); 0: never."""
        self.rare_probs = rare_probs
        """Each rare word's share of them (None: all alike)."""
        self.spell_order = spell_order
        """The spelling's character n-gram order (:data:`.spelling.ORDER`; saved with it)."""
        self.marks = bool(marks)
        self.lines = lines_from_list(lines) if marks and lines is not None else None
        self._spelling: Spelling | None = None
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise WordGPTError("the vocabulary has duplicate tokens")

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    @classmethod
    def train(
        cls,
        text: str | list[str],
        min_count: int = 1,
        max_vocab: int | None = None,
        normalizer: Normalizer | None = None,
        marks: bool = False,
        **kw,
    ):
        """Build the vocabulary from ``text`` (or texts, each split on its own; already
        cleaned as ``normalizer`` says, and marked here when ``marks``, its line model
        counted): most frequent first, ties broken by the token."""
        counts: Counter[str] = Counter()
        parts = [text] if isinstance(text, str) else list(text)
        for part in parts:
            counts.update(cls.split_text(mark(as_spaces(part)) if marks else part, **kw))
        ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if t != UNK]
        tokens = [t for t in ranked if counts[t] >= min_count]
        if max_vocab is not None:
            tokens = tokens[:max_vocab]
        kept = set(tokens)
        rare = [t for t in ranked if t not in kept]
        lam, probs = lexicon_weights(counts, rare)
        return cls([UNK, *tokens], normalizer=normalizer, rare=rare, lexicon_weight=lam,
                   rare_probs=probs if len(set(probs)) > 1 else None, marks=marks,
                   lines=line_counts(parts) if marks else None, **kw)  # fmt: skip

    @staticmethod
    def split_text(text: str, **kw) -> list[str]:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        get = self.stoi.get
        return [get(t, 0) for t in self.split(self.prepared(text))]

    def decode(self, ids: list[int], before: str = "") -> str:
        itos = self.itos
        return self.unmarked("".join(itos[i] for i in ids), before)

    def unknown(self, text: str) -> Counter[str]:
        """The tokens of ``text`` that are not in the vocabulary, with their counts."""
        return Counter(self.unknown_words(text))

    def unknown_words(self, text: str) -> list[str]:
        """The tokens of ``text`` that are not in the vocabulary, in order, repeats included."""
        return [t for t in self.split(self.prepared(text)) if t not in self.stoi]

    def token_strings(self) -> list[str]:
        return list(self.itos)

    def spelling(self, without: frozenset[str] = frozenset()) -> Spelling:
        """The character model that an <unk> is spelled with (fitted on first use);
        ``without``: one fitted as if these rare words had never been seen (a new one each
        time, the other rare words' shares renormalised, the lexicon's weight kept)."""
        if without & set(self.rare):
            keep = [i for i, w in enumerate(self.rare) if w not in without]
            rare = [self.rare[i] for i in keep]
            probs = [self.rare_probs[i] for i in keep] if self.rare_probs else []
            total = sum(probs)
            return Spelling(
                self.itos[1:] + rare,
                lexicon=rare,
                lexicon_probs=[p / total for p in probs] if total > 0 else (),
                lexicon_weight=self.lexicon_weight,
                order=self.spell_order,
            )
        if self._spelling is None:
            self._spelling = Spelling(
                self.itos[1:] + self.rare,
                lexicon=self.rare,
                lexicon_probs=self.rare_probs or (),
                lexicon_weight=self.lexicon_weight,
                order=self.spell_order,
            )
        return self._spelling

    def _dict(self, d: dict) -> dict:
        d = {**self._lines_dict(_with_normalizer(d, self.normalizer)),
             "spell_order": self.spell_order}  # fmt: skip
        if not self.rare:
            return d
        d = {**d, "rare": self.rare, "lexicon_weight": self.lexicon_weight}
        return {**d, "rare_probs": self.rare_probs} if self.rare_probs else d


class WordTokenizer(VocabTokenizer):
    """Words (``\\w+``), single punctuation marks and whitespace characters as tokens.

    With ``space_prefix`` a single space is attached to the following word or mark
    (``" quixote"``), which halves the number of tokens and keeps the exact round trip.
    """

    kind = "word"

    def __init__(
        self,
        itos: list[str],
        space_prefix: bool = False,
        normalizer: Normalizer | None = None,
        rare: list[str] = (),
        **lexicon,
    ):
        super().__init__(itos, normalizer, rare, **lexicon)
        self.space_prefix = space_prefix
        self._pattern = SPACE_PREFIX_PATTERN if space_prefix else WORD_PATTERN

    @staticmethod
    def split_text(text: str, space_prefix: bool = False) -> list[str]:
        """The tokens of ``text`` (already marked when the tokenizer marks)."""
        return (SPACE_PREFIX_PATTERN if space_prefix else WORD_PATTERN).findall(text)

    def split(self, text: str) -> list[str]:
        return self._pattern.findall(text)

    def to_dict(self) -> dict:
        return self._dict({"kind": self.kind, "space_prefix": self.space_prefix, "itos": self.itos})


class CharTokenizer(VocabTokenizer):
    """Every character a token."""

    kind = "char"

    @staticmethod
    def split_text(text: str) -> list[str]:
        return list(text)

    def split(self, text: str) -> list[str]:
        return list(text)

    def to_dict(self) -> dict:
        return self._dict({"kind": self.kind, "itos": self.itos})


class BPETokenizer(TextSteps):
    """A byte-level BPE trained with Hugging Face ``tokenizers``: any text round-trips."""

    kind = "bpe"

    def __init__(self, hf, normalizer: Normalizer | None = None, marks: bool = False,
                 lines=None):  # fmt: skip
        self.hf = hf
        self.normalizer = normalizer or Normalizer()
        self.marks = bool(marks)
        self.lines = lines_from_list(lines) if marks and lines is not None else None

    @classmethod
    def train(
        cls, text: str | Iterable[str], vocab_size: int = 4096,
        normalizer: Normalizer | None = None, marks: bool = False,
    ) -> BPETokenizer:  # fmt: skip
        """Train on ``text``, or on an iterator of texts (a corpus streamed in chunks; marked
        here when ``marks``, its line model counted)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[UNK],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        if isinstance(text, str):  # cut at safe points, as a streamed corpus is
            text = chunks([text], 1 << 20, lowercase=False)
        seen = LineCounts()

        def marked(parts):  # the line model counted on the way
            for part in parts:
                seen.see("train", break_points(part))
                yield mark(as_spaces(part))

        hf.train_from_iterator(marked(text) if marks else text, trainer=trainer)
        return cls(hf, normalizer, marks, seen.counts if marks else None)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        # the batch call without offsets: the same ids, 1.5x faster than encode()
        return self.hf.encode_batch_fast([self.prepared(text)], add_special_tokens=False)[0].ids

    def decode(self, ids: list[int], before: str = "") -> str:
        return self.unmarked(self.hf.decode(list(ids), skip_special_tokens=False), before)

    def unknown(self, text: str) -> Counter[str]:
        return Counter()  # bytes cover everything

    def unknown_words(self, text: str) -> list[str]:
        return []

    def token_strings(self) -> list[str]:
        """Each token's text (a mark as itself)."""
        return [self.hf.decode([i], skip_special_tokens=False) for i in range(self.vocab_size)]

    def spelling(self, without: frozenset[str] = frozenset()) -> Spelling:
        """Bytes cover every text: nothing is ever unknown, nothing to spell."""
        return Spelling([])

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "hf": json.loads(self.hf.to_str())}
        return _with_normalizer(self._lines_dict(d), self.normalizer)


def _with_normalizer(d: dict, n: Normalizer) -> dict:
    """A tokenizer's dict, with its normalizer when it has one (older files have none)."""
    return {**d, "normalize": n.to_dict()} if n != Normalizer() else d


def unk_id(tok: Tokenizer) -> int | None:
    """The id of ``<unk>`` in ``tok``'s vocabulary, if it has one: what generation leaves
    out unless it is asked to write ``<unk>``."""
    strings = tok.token_strings()
    return strings.index(UNK) if UNK in strings else None


def start_ids(tok: Tokenizer) -> list[int]:
    """Where generation starts with no prompt: just after a full stop, so that the model
    begins a sentence (not at id 0, which is ``<unk>``)."""
    ids = tok.encode(".")
    return ids if ids and 0 not in ids else [1]


def from_dict(d: dict) -> Tokenizer:
    """A tokenizer from its ``to_dict()``; anything else (a garbled or foreign file) is one
    clear :class:`WordGPTError`."""
    kind = d.get("kind") if isinstance(d, dict) else None
    norm = Normalizer.from_dict(d.get("normalize")) if kind else None
    if kind in ("word", "char"):
        itos, rare = d.get("itos"), d.get("rare", [])
        marks = {"marks": d.get("marks") is True, "lines": d.get("lines")}
        lexicon = {**lexicon_settings(d, rare), **marks}
        for what in (itos, rare):
            if not isinstance(what, list) or not all(isinstance(t, str) and t for t in what):
                raise WordGPTError("the tokenizer's vocabulary (itos) is not a list of tokens")
        if kind == "char":
            return CharTokenizer(itos, norm, rare, **lexicon)
        return WordTokenizer(itos, d.get("space_prefix", False) is True, norm, rare, **lexicon)
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        try:
            hf = HFTokenizer.from_str(json.dumps(d["hf"]))
            return BPETokenizer(hf, norm, d.get("marks") is True, d.get("lines"))
        except Exception as e:  # the Rust library raises its own exception types
            raise WordGPTError(f"the BPE tokenizer cannot be read: {e}") from None
    raise WordGPTError(f"unknown tokenizer kind {kind!r} in tokenizer file")


def load(path: str | Path) -> Tokenizer:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WordGPTError(f"no tokenizer file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WordGPTError(f"tokenizer file {path} is not valid JSON: {e}") from None
    return from_dict(d)


# Python's \w (str.isalnum() or "_") and \s (str.isspace()) spelled for the Oniguruma regex
# engine of Hugging Face tokenizers, whose own \w and \s differ (marks, \x1c-\x1f).
_HF_W = r"\p{L}\p{N}_"
_HF_S = r"\s\x1c-\x1f"
HF_PATTERNS = {
    False: rf"[{_HF_W}]+|[^{_HF_S}]|[{_HF_S}]",
    True: rf" ?[{_HF_W}]+| ?[^{_HF_W}{_HF_S}]|[{_HF_S}]",
}


def to_hf(tok: Tokenizer):
    """The same tokenizer as a Hugging Face ``tokenizers.Tokenizer``: identical ids and an
    exact decoder (word and char tokens as a WordLevel model over the same split)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    if getattr(tok, "marks", False):
        raise WordGPTError(
            "a tokenizer that writes capitals and line breaks as marks has no "
            "Hugging Face form: prepare the text with --no-marks to export it"
        )
    if isinstance(tok, BPETokenizer):
        hf = HFTokenizer.from_str(tok.hf.to_str())
        if (n := tok.normalizer.to_hf()) is not None:
            hf.normalizer = n
        return hf
    if not isinstance(tok, VocabTokenizer):
        raise WordGPTError(f"no Hugging Face form for a {tok.kind} tokenizer")
    hf = HFTokenizer(models.WordLevel(vocab=dict(tok.stoi), unk_token=UNK))
    pattern = r"[\s\S]" if tok.kind == "char" else HF_PATTERNS[bool(tok.space_prefix)]
    hf.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    hf.decoder = decoders.Fuse()
    if (n := tok.normalizer.to_hf()) is not None:
        hf.normalizer = n
    return hf
