"""Training batches (training/batches.py) as a function of (seed, step, rank): one global
draw cut by rank and micro-batch, targets shifted by one, dropout masks that follow the step,
and nanoGPT's get_batch on a split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wordgpt.corpus.tokenfiles import load_split
from wordgpt.errors import WordGPTError
from wordgpt.training.batches import Batches
from wordgpt.training.distributed import Dist

from .helpers import get_batch, make_trainer


def test_the_global_batch_is_one_draw_cut_by_rank_and_micro_batch(word_data):
    data = load_split(word_data, "train")
    one = Batches(data, 8, 16, 1, seed=5, d=Dist())
    ranks = [Batches(data, 4, 16, 1, seed=5, d=Dist(rank=r, world=2)) for r in (0, 1)]
    accum = Batches(data, 4, 16, 2, seed=5, d=Dist())
    x8, _ = one.micro(3, 0)
    halves = [b.micro(3, 0)[0] for b in ranks]
    assert torch.equal(torch.cat(halves), x8)  # 2 ranks x 4 rows == 1 process x 8 rows
    assert torch.equal(torch.cat([accum.micro(3, 0)[0], accum.micro(3, 1)[0]]), x8)
    assert not torch.equal(halves[0], halves[1])  # ranks draw different rows
    assert not torch.equal(one.micro(4, 0)[0], x8)  # and each step new ones
    assert torch.equal(one.micro(3, 0)[0], x8)  # a function of (seed, step): no state


def test_y_is_x_shifted_by_one(word_data):
    x, y = Batches(load_split(word_data, "train"), 4, 16, 1, 0, Dist()).micro(0, 0)
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])


def test_dropout_masks_are_a_function_of_the_step(word_data):
    """With dropout, two trainers from the same start stay identical (no hidden RNG state),
    whatever other code draws random numbers in between."""
    a = make_trainer(word_data, model_kw={"dropout": 0.3})
    b = make_trainer(word_data, model_kw={"dropout": 0.3})
    a.train_step()
    torch.rand(100)  # someone else uses the global generator
    b.train_step()
    for va, vb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(va, vb)


def test_get_batch_shapes_shift_and_seed(word_data):
    train = load_split(word_data, "train")
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(train, 4, 16, g)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    row = x[0].numpy()
    starts = [i for i in range(len(train) - 16) if np.array_equal(train[i : i + 16], row)]
    assert starts and train[starts[0] + 16] == y[0, -1]
    x2, _ = get_batch(train, 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)


def test_a_split_shorter_than_a_block_is_a_clear_error():
    with pytest.raises(WordGPTError, match="too short"):
        get_batch(np.zeros(10, dtype=np.uint16), 2, 16, torch.Generator())
