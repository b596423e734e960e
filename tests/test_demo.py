"""The README's main job (`make demo`), shortened."""

from dataclasses import replace

import pytest

from wordgpt import demo
from wordgpt.corpus.sources import BOOKS
from wordgpt.training import speed

from .conftest import needs_book

pytestmark = pytest.mark.slow  # end to end: not in make test-fast


@needs_book
def test_demo_trains_on_the_book_and_prints_a_sample(tmp_path, capsys):
    demo.main(["--workdir", str(tmp_path), "--max-iters", "6"])
    out = capsys.readouterr().out
    assert "don-quixote" in out and "bits/char" in out
    assert "sample (prompt 'the knight'" in out and "\ncopies: " in out  # the copy line too
    run = tmp_path / "runs" / "don-quixote-demo"
    assert (run / "best.pt").is_file() and (run / "report.html").is_file()


class PlannedError(Exception):
    """The demo stopped once its run was planned."""


@needs_book
def test_the_demo_trains_the_recipe_this_machine_gets_for_90_seconds(tmp_path, monkeypatch):
    """A machine at a third of the recipes' machine speed gets the 60 s recipe for the demo's
    90 s (a fast one the 300 s recipe), each keeping the 90 s budget: what ``train`` picks
    (the demo's own train call, planned and stopped there)."""
    plans = []

    def plan_only(*args, **kw):
        plans.append(real(*args, **kw, dry_run=True))
        raise PlannedError

    real = demo.train
    monkeypatch.setattr(demo, "train", plan_only)
    ref = speed.PROBE["tokens_per_s"]
    for rate, expected in [(ref / 3, "word-60"), (ref * 3, "cpu")]:
        monkeypatch.setattr(
            speed, "probe_speed", lambda device="auto", threads=None, r=rate: speed.Speed(r)
        )
        with pytest.raises(PlannedError):
            demo.main(["--workdir", str(tmp_path), "--max-iters", "2"])
        assert plans[-1].preset == expected and plans[-1].train.stop.time_budget == 90.0


def test_demo_falls_back_to_the_wikipedia_sample_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORDGPT_DATA_DIR", str(tmp_path / "nothing"))
    book = replace(BOOKS["don-quixote"], url="http://127.0.0.1:9/996.txt")
    monkeypatch.setitem(BOOKS, "don-quixote", book)
    demo.main(["--workdir", str(tmp_path), "--max-iters", "4"])
    said = capsys.readouterr()
    assert "training on the bundled Wikipedia sample instead\n" in said.err  # a note
    assert "sample (prompt 'the history of'" in said.out
