"""Questions to word vectors: the key of a word, nearest words, analogies."""

from __future__ import annotations

import difflib
import re

from ..errors import WordGPTError


def find_key(kv, word: str) -> str:
    """The key of ``word`` in ``kv``: as given, or with the space that space-prefixed word
    tokens carry (' knight'), or lowercased as a lowercased corpus has it ('Knight'); of
    those that exist, the most frequent (keys are in frequency order), so 'knight' in
    space-prefixed vectors is the word (' knight'), not its rare form after a quote mark;
    else one clear error with close spellings."""
    forms = [
        k for k in (word, " " + word, word.lower(), " " + word.lower()) if k in kv.key_to_index
    ]
    if forms:
        return min(forms, key=kv.key_to_index.__getitem__)
    close = difflib.get_close_matches(word, kv.index_to_key[:50_000], n=5)
    hint = f"; close spellings: {', '.join(close)}" if close else ""
    raise WordGPTError(f"{word!r} is not in the vectors' vocabulary{hint}")


def neighbors(kv, query: str, n: int = 10) -> list[tuple[str, float]]:
    """Nearest words by cosine similarity. ``query`` is a word or an analogy such as
    ``king - man + woman`` (``king -man +woman`` too; a hyphen inside a word, as in
    ``lance-rack``, is part of it)."""
    pos, neg, sign = [], [], +1
    for part in re.findall(r"\+|(?<!\S)-|[^\s+]+", query):
        if part in "+-":
            sign = +1 if part == "+" else -1
            continue
        (pos if sign > 0 else neg).append(find_key(kv, part))
        sign = +1
    if not pos and not neg:
        raise WordGPTError("give a word, or an analogy such as 'king - man + woman'")
    return kv.most_similar(positive=pos, negative=neg, topn=n)
