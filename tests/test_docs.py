"""The project's text: every relative link in the README, docs/ and benchmarks/RESULTS.md
leads to a file that exists and, with a ``#part``, to a heading of that file."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from .helpers import ROOT, USER_PAGES

PAGES = [*USER_PAGES, ROOT / "benchmarks" / "RESULTS.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``_`` dropped, spaces as
    hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (a repeated one also as ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        s = slug(line.lstrip("#"))
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def test_slug_follows_github():
    assert slug(" Recipes by budget at `--min-count 1`: Don Quixote") == (
        "recipes-by-budget-at---min-count-1-don-quixote"
    )
    assert slug(" What else the 900 s run's evaluation could take") == (
        "what-else-the-900-s-runs-evaluation-could-take"
    )
    assert slug(" `adaptive_nll`") == "adaptive_nll"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check offline
            continue
        path, _, part = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif part and dest.suffix == ".md" and part not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"
