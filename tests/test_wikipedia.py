"""A Wikipedia dump as text: pages cut out as gensim reads them, article text without markup
(the fast extractor keeps the words the full parser keeps), streamed, redirects dropped, the
val split by article."""

from __future__ import annotations

import bz2
import re

import numpy as np

from tests.reference_corpus import reference_ids
from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare

MARKUP = [
    r"'''",
    r"''",
    r"\[\[",
    r"\]\]",
    r"\{\{",
    r"\}\}",
    r"\{\|",
    r"\|\}",
    r"(?m)^=+.*=+\s*$",
    r"<ref",
    r"</ref",
    r"&nbsp;",
    r"\[http",
    r"(?i)\bthumb\|",
    r"(?m)^\s*(\||!)",
]


def test_wikipedia_sample_is_article_text_without_markup(wiki_articles):
    wiki_text = "\n\n".join(text for _, text in wiki_articles)
    assert len(wiki_text) > 1_000_000
    for pattern in MARKUP:
        hits = re.findall(pattern, wiki_text)
        assert not hits, (pattern, hits[:3])


def test_pages_are_cut_out_of_the_dump_as_gensim_reads_them():
    from gensim.corpora.wikicorpus import extract_pages

    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_page_xml, parse_page

    with bz2.open(sample_dump_path()) as f:
        ours = [p for p in map(parse_page, iter_page_xml(f, block=4096)) if p]
    with bz2.open(sample_dump_path()) as f:
        theirs = [
            (t, w)
            for t, w, _ in extract_pages(f, filter_namespaces=("0",))
            if w and w.lstrip()[:9].lower() != "#redirect"
        ]
    assert ours == theirs and len(ours) > 100


def test_the_fast_extractor_keeps_the_words_the_full_parser_keeps(wiki_articles):
    """The regular-expression extractor against mwparserfromhell's parse on 15 articles: the
    same words (99.5 % of them either way). How much faster it is, is benchmarks/prepare.py's
    business (--extractors)."""
    from collections import Counter

    from tests.reference_corpus import article_text_parsed
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import article_text, iter_page_xml, parse_page

    with bz2.open(sample_dump_path()) as f:
        pages = [p for p in map(parse_page, iter_page_xml(f)) if p][:15]
    fast = " ".join(article_text(w) for _, w in pages)
    full = " ".join(article_text_parsed(w) for _, w in pages)
    a, b = (Counter(re.findall(r"\w+", x.lower())) for x in (fast, full))
    common = sum((a & b).values())
    assert common / sum(a.values()) > 0.995 and common / sum(b.values()) > 0.995


def test_wikipedia_articles_are_streamed_and_redirects_dropped(wiki_articles):
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_articles

    title, text = next(iter_articles(sample_dump_path()))  # the first page, nothing more read
    assert title == "Anarchism" and text.startswith("Anarchism is a political philosophy")
    titles = [t for t, _ in wiki_articles]
    # 206 pages, 107 of them articles (one is left empty once its markup is gone)
    assert 100 <= len(titles) <= 107 and len(set(titles)) == len(titles)
    assert "AccessibleComputing" not in titles  # a redirect
    assert not any(text.lstrip().lower().startswith("#redirect") for _, text in wiki_articles)


def test_wikipedia_sample_prepares(tmp_path):
    p = prepare(tmp_path, DataConfig(dataset="wikipedia-sample", tokenizer="char"))
    assert p.meta["source"]["kind"] == "wikipedia"
    assert p.meta["splits"]["train"]["tokens"] > 1_000_000


def test_the_article_split_is_deterministic_and_recorded(wiki_articles, tmp_path):
    cfg = DataConfig(dataset="wikipedia-sample")
    a = prepare(tmp_path / "a", cfg, workers=2, progress=False)
    b = prepare(tmp_path / "b", cfg, workers=1, progress=False)
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (a.out / name).read_bytes() == (b.out / name).read_bytes(), name
    split = a.meta["split"]
    assert split["method"] == "articles" and split["every"] == 10
    n = len(wiki_articles)
    assert split["articles"] == {"val": n // 10, "train": n - n // 10}
    tok, train_ids, val_ids, _ = reference_ids(cfg, wiki_articles, kind="wikipedia")
    assert np.fromfile(a.out / "val.bin", a.meta["dtype"]).tolist() == val_ids
    assert np.fromfile(a.out / "train.bin", a.meta["dtype"]).tolist() == train_ids


def test_parallel_parsing_of_a_dump_gives_the_same_articles(wiki_articles):
    from wordgpt.corpus.sources import sample_dump_path
    from wordgpt.corpus.wikipedia import iter_articles

    assert list(iter_articles(sample_dump_path(), workers=2)) == wiki_articles
