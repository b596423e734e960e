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


PAGES_PER_TASK = 64
"""Pages handed to a worker process at a time."""


def iter_pages(f, name: str = "dump") -> Iterator[tuple[str, str]]:
    """``(title, wikitext)`` of each article page of an open (decompressed) dump, redirects
    and other namespaces left out. A broken or foreign file is one clear error."""
    from gensim.corpora.wikicorpus import extract_pages

    from .errors import DataError

    try:
        for title, wikitext, _pageid in extract_pages(f, filter_namespaces=("0",)):
            if wikitext and wikitext.lstrip()[:9].lower() != "#redirect":
                yield title, wikitext
    except Exception as e:  # a truncated or foreign XML file
        raise DataError(f"cannot read {name} as a MediaWiki dump: {e}") from None


def _parse_pages(pages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Worker: plain text of a batch of pages (empty articles dropped)."""
    out = []
    for title, wikitext in pages:
        if text := article_text(wikitext):
            out.append((title, text))
    return out


def _batches(pages: Iterator, n: int) -> Iterator[list]:
    batch = []
    for p in pages:
        batch.append(p)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_articles(source, workers: int = 1, name: str | None = None) -> Iterator[tuple[str, str]]:
    """``(title, text)`` of each article of a dump (a path or an open binary file), in the
    dump's order; the markup is parsed in ``workers`` processes."""
    from .corpus import ordered_map
    from .data import open_file

    with contextlib.ExitStack() as stack:
        if isinstance(source, str | Path):
            name = name or str(source)
            source = stack.enter_context(open_file(Path(source)))
        pages = iter_pages(source, name or "dump")
        for batch in ordered_map(_parse_pages, _batches(pages, PAGES_PER_TASK), workers):
            yield from batch


def read_dump(path: str | Path) -> str:
    """All articles of a dump as one text: a title line, then the article, then a blank line."""
    return "\n\n".join(f"{title}\n\n{text}" for title, text in iter_articles(path)) + "\n"
