"""Evaluation: windows with a stride (more context, each token once) and adaptive evaluation
(score a window, then learn from it), against plain references."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import wordgpt
from wordgpt.config import DataConfig, ModelConfig
from wordgpt.corpus.cleaning import clean
from wordgpt.corpus.tokenfiles import load_meta, load_split
from wordgpt.model.gpt import GPT
from wordgpt.use.adapt import Adaptation
from wordgpt.use.evaluate import adaptive_nll, evaluate, token_nll
from wordgpt.use.train_run import train

from .helpers import cli, one_line_error, tiny_gpt

BLOCK = 16


def total_nll(*args, **kw) -> tuple[float, int]:
    """The sum of the per-token losses, and how many tokens were scored."""
    nll = token_nll(*args, **kw)
    return float(nll.sum()), len(nll)


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny_gpt(50, BLOCK)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 50, 16 * 7 + 5).astype(np.uint16)  # a short tail


@torch.no_grad()
def nll_of(model, context: np.ndarray, target: int) -> float:
    """The cross-entropy of ``target`` after ``context``, the plain way: the full logits."""
    logits = model(torch.from_numpy(context.astype(np.int64))[None])[0, -1]
    return -torch.log_softmax(logits.float(), -1)[target].item()


def test_a_stride_of_the_block_is_consecutive_windows_each_with_its_own_context(model, data):
    """Stride = block: every token predicted from the start of its own block-long window
    (the last, shorter window from its own start), as the plain evaluation always did."""
    n = len(data) - 1
    want = sum(nll_of(model, data[i - i % BLOCK : i + 1], int(data[i + 1])) for i in range(n))
    total, count = total_nll(model, data, BLOCK, batch_size=3, stride=BLOCK)
    assert count == n and total == pytest.approx(want, rel=1e-5)
    assert total_nll(model, data, BLOCK, batch_size=3) == pytest.approx((total, count))


def test_a_stride_of_one_gives_every_token_a_whole_block_of_context(model, data):
    n = len(data) - 1
    want = sum(
        nll_of(model, data[max(0, i + 1 - BLOCK) : i + 1], int(data[i + 1])) for i in range(n)
    )
    total, count = total_nll(model, data, BLOCK, batch_size=4, stride=1)
    assert count == n and total == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("stride", [3, 5, 8, 15])
def test_any_stride_scores_each_token_once_with_at_least_block_minus_stride_of_context(
    model, data, stride
):
    """Windows start every ``stride`` tokens; each token is scored once, by the first window
    that reaches it, from that window's start: after the first window, from at least
    block - stride tokens of context (the reference computes each token on its own)."""
    n = len(data) - 1
    total, count = total_nll(model, data, BLOCK, batch_size=2, stride=stride)
    assert count == n
    starts = list(range(0, n - BLOCK + 1, stride))
    end, want = 0, 0.0
    for s in starts:
        for i in range(max(end, s), s + BLOCK):
            assert i - s >= (BLOCK - stride if s else 0)
            want += nll_of(model, data[s : i + 1], int(data[i + 1]))
        end = s + BLOCK
    at = max(end - (BLOCK - stride), 0)
    want += sum(nll_of(model, data[at : i + 1], int(data[i + 1])) for i in range(end, n))
    assert total == pytest.approx(want, rel=1e-5)


def test_a_short_split_is_one_window(model):
    short = np.arange(7, dtype=np.uint16)
    want = sum(nll_of(model, short[: i + 1], int(short[i + 1])) for i in range(6))
    for stride in (1, 4, BLOCK):
        assert total_nll(model, short, BLOCK, stride=stride) == pytest.approx((want, 6))


@pytest.mark.parametrize("stride", [None, 5])
def test_adaptive_evaluation_scores_each_token_before_it_learns_from_it(model, data, stride):
    """Changing the text after a point changes no loss before it: a token is scored by
    weights that learned only from the tokens before it (and the model itself is left as
    it was)."""
    before = [p.detach().clone() for p in model.parameters()]
    a = adaptive_nll(model, data, BLOCK, Adaptation.sgd(0.5), stride=stride)
    changed = data.copy()
    cut = 2 * BLOCK + 7  # inside the third window
    changed[cut + 1 :] = (changed[cut + 1 :] + 1) % 50
    b = adaptive_nll(model, changed, BLOCK, Adaptation.sgd(0.5), stride=stride)
    assert np.array_equal(a[:cut], b[:cut]) and not np.allclose(a[cut:], b[cut:])
    first = sum(nll_of(model, data[: i + 1], int(data[i + 1])) for i in range(BLOCK))
    assert a[:BLOCK].sum() == pytest.approx(first, rel=1e-5)  # the first window: no learning yet
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_adaptive_evaluation_learns_a_text_that_repeats(model):
    """A window repeated eight times: adapting, the repeats cost far less than they do to
    the static model, and the last far less than the first."""
    text = np.tile(np.random.default_rng(1).integers(0, 50, BLOCK).astype(np.uint16), 8)
    static, _ = total_nll(model, text, BLOCK)
    adaptive = adaptive_nll(model, text, BLOCK, Adaptation.sgd(0.3))
    assert adaptive.sum() < 0.8 * static
    assert adaptive[-BLOCK:].sum() < 0.6 * adaptive[:BLOCK].sum()


@pytest.mark.slow
def test_the_stride_and_adaptive_evaluation_from_the_command_line(run_dir):
    r = cli("eval", run_dir, "--stride", "8", "--adapt", "--json")
    assert r.returncode == 0, r.stderr
    import json

    got = json.loads(r.stdout)
    assert got["stride"] == 8 and got["adaptive_bits_per_char"] > 0
    assert got["adaptation"] == {"rule": "rms", "lr": 4e-5, "decay": 0.0}
    sgd = json.loads(cli("eval", run_dir, "--stride", "8", "--adapt", "--adapt-rule", "sgd",
                         "--json").stdout)  # fmt: skip
    assert sgd["adaptation"]["rule"] == "sgd" and sgd["adaptation"]["lr"] == 0.02
    assert sgd["adaptive_bits_per_char"] != got["adaptive_bits_per_char"]
    assert sgd["bits_per_char"] == got["bits_per_char"]  # the static figure never learns
    assert "adapt_decay" in one_line_error(cli("eval", run_dir, "--adapt", "--adapt-decay", "1"))
    plain = json.loads(cli("eval", run_dir, "--json").stdout)
    assert plain["stride"] is None and plain["adaptive_bits_per_char"] is None
    assert got["bits_per_char"] != plain["bits_per_char"]
    cli("eval", run_dir, "--stride", "8", "--adapt")  # after the plain one: kept beside it
    record = json.loads((run_dir / "eval.json").read_text())
    assert record["bits_per_char"] == plain["bits_per_char"] and record["stride"] is None
    assert record["variants"]["val, stride 8, adaptive, GPT alone"]["stride"] == 8
    mixed = json.loads(cli("eval", run_dir, "--ngram", "3", "--adapt", "--json").stdout)["ngram"]
    assert mixed["order"] == 3 and 0 < mixed["gpt_weight"] < 1
    assert mixed["bits_per_char"] < plain["bits_per_char"]  # a tiny GPT gains from the partner
    assert mixed["adaptive_bits_per_char"] > 0
    assert "--ngram" in one_line_error(cli("eval", run_dir, "--ngram", "9"))
    assert "more than the block size" in one_line_error(cli("eval", run_dir, "--stride", "1000"))
    assert "--stride" in one_line_error(cli("eval", run_dir, "--stride", "0"))


@pytest.fixture(scope="module")
def run_dir(word_data, tmp_path_factory):
    from wordgpt.use.train_run import train

    out = tmp_path_factory.mktemp("run")
    train(word_data, out, preset="tiny", max_iters=20, dtype="fp32", progress=False,
          tensorboard=False, report=False)  # fmt: skip
    return out


@pytest.mark.parametrize("stride", [None, 5, 1])
def test_adaptive_evaluation_that_learns_nothing_is_the_static_one(model, data, stride):
    """With a vanishing rate, adaptive evaluation scores what the static one does, window for
    window: the same windows, the same context for each token."""
    a = adaptive_nll(model, data, BLOCK, Adaptation.sgd(1e-30), stride=stride)
    total, count = total_nll(model, data, BLOCK, stride=stride)
    assert len(a) == count and a.sum() == pytest.approx(total, rel=1e-6)


@pytest.mark.slow
def test_eval_on_any_text_file_reports_bits_per_char(word_data, corpus_file, tmp_path):
    run = tmp_path / "run"
    train(
        word_data,
        run,
        preset="tiny",
        max_iters=20,
        progress=False,
        tensorboard=False,
        dtype="fp32",
        report=False,
    )
    m = wordgpt.load(run)
    r = m.evaluate_text(corpus_file)
    text = clean(corpus_file.read_text(encoding="utf-8"), DataConfig())
    assert r.chars == len(text) and r.tokens == len(m.tokenizer.encode(text)) - 1
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "eval",
            str(run),
            "--text",
            str(corpus_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bits_per_char"] == pytest.approx(r.bits_per_char)


def test_bits_per_char_of_a_uniform_model_is_exact(word_data):
    """Zero head weights give a uniform distribution: log2(V) bits for each token."""
    V = load_meta(word_data)["vocab_size"]
    m = GPT(ModelConfig(vocab_size=V, block_size=16, n_layer=1, n_head=1, n_embd=8))
    with torch.no_grad():
        m.lm_head.weight.zero_()
        m.lm_head.bias.zero_()
    val = load_split(word_data, "val")
    chars = 12_345
    r = evaluate(m, val, {"chars": chars}, block_size=16, batch_size=4)
    assert r.tokens == len(val) - 1
    assert r.bits_per_char == pytest.approx((len(val) - 1) * math.log2(V) / chars, rel=1e-6)
    assert r.perplexity == pytest.approx(V, rel=1e-5)


def test_evaluation_covers_the_split_whatever_the_batch(word_data):
    torch.manual_seed(0)
    m = GPT(
        ModelConfig(
            vocab_size=load_meta(word_data)["vocab_size"],
            block_size=16,
            n_layer=1,
            n_head=1,
            n_embd=8,
        )
    )
    val = np.asarray(load_split(word_data, "val"))[:1000]
    a = evaluate(m, val, {"chars": 1}, block_size=16, batch_size=3)
    b = evaluate(m, val, {"chars": 1}, block_size=16, batch_size=64)
    assert a.tokens == b.tokens == 999 and a.loss == pytest.approx(b.loss, rel=1e-6)
