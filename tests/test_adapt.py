"""Adaptive evaluation's rules (:mod:`wordgpt.use.adapt`): the RMS-normalised step is the
gradient over each parameter's RMS gradient on the training text, the decay pulls back toward
the trained weights, and a token is always scored before the model learns from it."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import wordgpt
from wordgpt.adapt_config import AdaptConfig
from wordgpt.errors import WordGPTError
from wordgpt.model.gpt import GPT
from wordgpt.use.adapt import EPS_SHARE, MS_WINDOWS, Adaptation, Learner
from wordgpt.use.evaluate import adaptive_nll, token_nll

from .helpers import tiny_gpt

BLOCK = 16


@pytest.fixture(scope="module")
def model() -> GPT:
    return tiny_gpt(50, BLOCK)


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 50, 400).astype(np.uint16)


def loss_of(model, tokens: np.ndarray) -> torch.Tensor:
    row = torch.from_numpy(tokens.astype(np.int64))[None]
    return model(row[:, :-1], row[:, 1:], reduction="none").mean()


def grads_of(model, tokens: np.ndarray) -> list[torch.Tensor]:
    """The gradient of the window's mean loss for each parameter (zero where none flows)."""
    params = list(model.parameters())
    g = torch.autograd.grad(loss_of(model, tokens), params, allow_unused=True)
    return [torch.zeros_like(p) if x is None else x for p, x in zip(params, g, strict=True)]


def test_the_rms_is_the_root_mean_square_gradient_over_training_windows(model, train):
    """The plain definition: the windows at the same places, each gradient squared, averaged
    over the windows, square-rooted."""
    got = Adaptation.of(AdaptConfig(), model, train, BLOCK).rms
    at = np.random.default_rng(0).integers(0, len(train) - BLOCK, MS_WINDOWS)
    squares = [grads_of(model, train[a : a + BLOCK + 1]) for a in at]
    want = [torch.stack(per).pow(2).mean(0).sqrt() for per in zip(*squares, strict=True)]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-9)
    assert sum((g > 0).sum() for g in got) > 0.25 * sum(g.numel() for g in got)


@pytest.mark.parametrize("decay", [0.0, 0.3])
def test_one_rms_step_is_the_gradient_over_its_rms_then_the_pull_back(model, train, decay):
    how = Adaptation.of(AdaptConfig(adapt_lr=1e-3, adapt_decay=decay), model, train, BLOCK)
    window = train[: BLOCK + 1]
    learner = Learner(model, how)
    learner.learn(loss_of(learner.model, window))
    mean = torch.cat([r.flatten() for r in how.rms]).mean()
    for p0, p, r, g in zip(model.parameters(), learner.model.parameters(), how.rms,
                           grads_of(copy.deepcopy(model), window), strict=True):  # fmt: skip
        stepped = p0 - 1e-3 * g / (r + EPS_SHARE * mean)
        if decay:
            stepped = stepped + decay * (p0 - stepped) * torch.clamp(r / mean, max=1 / decay)
        torch.testing.assert_close(p.detach(), stepped.detach(), rtol=1e-5, atol=1e-7)
    assert any(
        not torch.equal(p, q)
        for p, q in zip(model.parameters(), learner.model.parameters(), strict=True)
    )


def test_the_sgd_decay_takes_back_its_share_of_each_step_as_overlapping_windows_do(model, train):
    """A decay of a quarter moves the weights three quarters as far; so does a step that takes
    three quarters of the rate (windows every 3/4 block: each token read 4/3 times)."""
    window = train[: BLOCK + 1]
    moved = []
    for decay, share in ((0.0, 1.0), (0.25, 1.0), (0.0, 0.75)):
        learner = Learner(model, Adaptation.sgd(0.1, decay), share=share)
        learner.learn(loss_of(learner.model, window))
        moved.append(
            [
                q.detach() - p
                for p, q in zip(model.parameters(), learner.model.parameters(), strict=True)
            ]
        )
    for full, pulled, shared in zip(*moved, strict=True):
        torch.testing.assert_close(pulled, 0.75 * full, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(shared, 0.75 * full, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("decay", [0.0, 0.01])
def test_the_rms_rule_scores_each_token_before_it_learns_from_it(model, train, decay):
    """Changing the text after a point changes no loss before it; the rule learns (the text
    repeated costs less than statically) and the model itself is left as it was."""
    how = Adaptation.of(AdaptConfig(adapt_lr=1e-3, adapt_decay=decay), model, train, BLOCK)
    before = [p.detach().clone() for p in model.parameters()]
    text = np.tile(train[: BLOCK * 2], 4)
    a = adaptive_nll(model, text, BLOCK, how, stride=5)
    changed = text.copy()
    cut = 3 * BLOCK + 2
    changed[cut + 1 :] = (changed[cut + 1 :] + 1) % 50
    b = adaptive_nll(model, changed, BLOCK, how, stride=5)
    assert np.array_equal(a[:cut], b[:cut]) and not np.allclose(a[cut:], b[cut:])
    assert a.sum() < 0.97 * token_nll(model, text, BLOCK, stride=5).sum()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_the_rms_rule_needs_the_training_text_and_the_settings_are_checked(model):
    with pytest.raises(WordGPTError, match="--adapt-rule sgd"):
        Adaptation.of(AdaptConfig(), model, None, BLOCK)
    assert Adaptation.of(AdaptConfig(adapt_rule="sgd"), model, None, BLOCK).rms is None
    assert AdaptConfig().rate == 4e-5 and AdaptConfig(adapt_rule="sgd").rate == 0.02
    assert wordgpt.AdaptConfig is AdaptConfig  # the package's API names it
    for bad in ({"adapt_lr": 0.0}, {"adapt_decay": 1.0}, {"adapt_rule": "adam"}):
        with pytest.raises(WordGPTError):
            AdaptConfig(**bad)


def test_a_rate_that_diverges_is_one_line_not_a_figure(model, train):
    """A rate far too large makes the weights non-finite: refused, never printed as NaN."""
    how = Adaptation.of(AdaptConfig(adapt_lr=1e3), model, train, BLOCK)
    with pytest.raises(WordGPTError, match="smaller --adapt-lr"):
        adaptive_nll(model, np.tile(train[: BLOCK * 2], 4), BLOCK, how)
