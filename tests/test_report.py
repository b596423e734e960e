"""A report for every run: RUN/report.html (self-contained) and report.md, whose figures are
the run's own."""

from __future__ import annotations

import json
import re

import pytest

import wordgpt
from wordgpt.cli import main
from wordgpt.use.generate import COPY_MIN

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32"}


@pytest.fixture(scope="module")
def reported(word_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("rep") / "r"
    wordgpt.train(word_data, run, preset="tiny", max_iters=30, eval_interval=10, **QUIET)
    return run


def figures(run) -> dict:
    page = (run / "report.html").read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_training_ends_with_a_report_whose_figures_are_the_runs(reported):
    r = figures(reported)
    summary = json.loads((reported / "summary.json").read_text())
    assert r["training"]["step"] == summary["step"] == 30
    assert r["training"]["mfu"] == summary["mfu"] and r["model"]["params"] == summary["params"]
    assert r["evaluation"]["bits_per_char"] == wordgpt.load(reported).evaluate("val").bits_per_char
    assert [int(m["step"]) for m in r["metrics"]] == [0, 10, 20, 30]
    assert len(r["samples"]) == 3 and all(s["copies"] is not None for s in r["samples"])
    assert r["copies"]["n"] == COPY_MIN["word"] and 0 <= r["copies"]["val_ngrams_in_train"] <= 1
    assert r["machine"]["torch"] and r["machine"]["cores"] >= 1 and r["data"]["vocab_size"] > 1


def test_the_page_needs_no_network_and_its_twin_is_markdown(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="https?:', page) and "<script src" not in page
    assert "<svg" in page and "Samples" in page
    md = (reported / "report.md").read_text(encoding="utf-8")
    bpc = figures(reported)["evaluation"]["bits_per_char"]
    assert md.startswith("# ") and f"{bpc:.4f}" in md and "| val bits per character |" in md


def test_the_report_command_writes_it_again(reported, capsys):
    (reported / "report.html").unlink()
    main(["report", str(reported)])
    assert "report.html" in capsys.readouterr().out and (reported / "report.html").is_file()


@pytest.mark.slow
def test_a_report_made_during_training_says_so_and_the_end_of_any_training_rewrites_it(
    word_data, tmp_path
):
    """The report of a run in training says it is training (its latest step), never the
    figures of an earlier training's summary.json; a training stopped by Ctrl-C writes the
    report again, and it agrees with the new summary.json."""
    import json
    import signal

    from .helpers import cli, start_training, wait_for

    run = tmp_path / "run"
    flags = ("--preset", "tiny", "--dtype", "fp32", "--no-progress", "--no-tensorboard")
    assert (
        cli("train", "--data", word_data, "--out", run, *flags, "--max-iters", 10).returncode == 0
    )
    p = start_training(word_data, run, *flags, "--resume", "--max-iters", 100_000,
                       "--eval-interval", 20, output=True)  # fmt: skip
    try:
        wait_for(
            lambda: (
                "step,train" in (run / "metrics.csv").read_text()
                and int((run / "metrics.csv").read_text().split()[-1].split(",")[0]) >= 40
            )
        )
        r = cli("report", run)
        assert r.returncode == 0, r.stderr
        md = (run / "report.md").read_text()
        assert "still training (pid" in md and "max_iters (best val loss" not in md
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=120)
    assert p.returncode == 130
    summary = json.loads((run / "summary.json").read_text())
    md = (run / "report.md").read_text()
    assert summary["stopped"] == "signal 2" and "still training" not in md
    assert f"{summary['step']:,} steps" in md


def test_counts_read_as_english_and_both_forms_keep_one_order(reported):
    """One sample is "seed 1", none is "none", one step is "1 step"; the page and its
    markdown twin show their sections in one order (the markdown without the pictures)."""
    from wordgpt.use.report_page import markdown, page

    r = figures(reported)
    one = {**r, "samples": r["samples"][:1], "training": {**r["training"], "step": 1}}
    html, md = page(one), markdown(one)
    assert "Samples (seed 1; copied spans marked)" in html and "1 step," in html
    assert "seeds 1-1" not in html and "1 steps" not in html
    none = page({**r, "samples": []})
    assert "Samples (none)" in none and "seeds 1-0" not in none
    shown = re.findall(r"<h2>(.*?)</h2>", html)
    assert [h for h in shown if h != "Curves"] == re.findall(r"^## (.*)$", md, re.M)
    assert shown.index("Evaluation") < shown.index("Samples (seed 1; copied spans marked)")


def test_a_curve_over_a_narrow_range_keeps_off_the_charts_edges():
    """Losses of 7.86 to 7.90: neither curve drawn on the top or bottom edge."""
    from wordgpt.use.report_page import curve_svg

    h = 260
    svg = curve_svg([[(0, 7.90), (10, 7.88)], [(0, 7.89), (10, 7.86)]], ["train", "val"], "loss",
                    h=h)  # fmt: skip
    ys = [float(y) for y in re.findall(r"[ML][\d.]+,([\d.]+)", svg)]
    top, bottom = 20.0, h - 30.0
    assert ys and all(top + 2 < y < bottom - 2 for y in ys)
