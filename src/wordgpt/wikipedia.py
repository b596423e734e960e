"""Streaming a MediaWiki ``pages-articles`` XML dump into plain article text.

gensim's dump reader streams pages out of the (bz2) XML; mwparserfromhell parses the wiki
markup, from which references, templates, tables, files and categories are removed before
the rest is flattened to text. Redirects and non-article namespaces are skipped.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

# Tags whose contents are not prose.
_DROP_TAGS = {
    "ref",
    "references",
    "table",
    "gallery",
    "math",
    "timeline",
    "score",
    "imagemap",
    "syntaxhighlight",
    "source",
    "pre",
    "code",
    "chem",
    "hiero",
    "div",
    "span",
}
_DROP_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
# An innermost wiki table ``{| ... |}``; removed repeatedly so nested tables go too.
_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_LEFTOVER = re.compile(r"\{\||\|\}|\{\{|\}\}|\[\[|\]\]|'''?|<[^>]{0,200}>|&nbsp;|\[https?://\S*\s?")


def sample_dump_path() -> Path:
    """The shortened English Wikipedia dump that ships inside gensim's wheel."""
    import gensim

    return (
        Path(gensim.__file__).parent
        / "test"
        / "test_data"
        / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )


def article_text(wikitext: str) -> str:
    """Plain prose of one article's wiki markup: headings kept as lines, markup removed."""
    import mwparserfromhell as mw

    n = -1
    while n:
        wikitext, n = _TABLE.subn("", wikitext)
    code = mw.parse(wikitext)
    for node in list(code.filter_tags(recursive=True)):
        if str(node.tag).strip().lower() in _DROP_TAGS:
            _remove(code, node)
    for node in list(code.filter_templates(recursive=False)):
        _remove(code, node)
    for node in list(code.filter_wikilinks(recursive=True)):
        if str(node.title).strip().lower().startswith(_DROP_LINK_PREFIXES):
            _remove(code, node)
    for node in list(code.filter_headings(recursive=False)):
        code.replace(node, "\n" + node.title.strip_code().strip() + "\n")
    text = code.strip_code(normalize=True, collapse=True)
    text = _LEFTOVER.sub("", text)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if not ln.lower().startswith(_DROP_LINK_PREFIXES)]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _remove(code, node) -> None:
    with contextlib.suppress(ValueError):  # already gone with its parent
        code.remove(node)


def iter_articles(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(title, text)`` for each article of a dump, streamed page by page."""
    from gensim.corpora.wikicorpus import extract_pages

    from .data import open_file

    with open_file(Path(path)) as f:
        for title, wikitext, _pageid in extract_pages(f, filter_namespaces=("0",)):
            if not wikitext or wikitext.lstrip()[:9].lower() == "#redirect":
                continue
            text = article_text(wikitext)
            if text:
                yield title, text


def read_dump(path: str | Path) -> str:
    """All articles of a dump as one text: a title line, then the article, then a blank line."""
    return "\n\n".join(f"{title}\n\n{text}" for title, text in iter_articles(path)) + "\n"
