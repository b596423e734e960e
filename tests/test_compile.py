"""torch.compile on the CPU with a tiny model: compiled training steps follow the eager ones,
and the compiled run samples what the eager run samples. (That a compiled run's checkpoint
has plain names and loads uncompiled is in test_train.py.)"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from wordgpt.config import SampleConfig, TrainConfig
from wordgpt.corpus.tokenfiles import load_split
from wordgpt.model.sampling import generate_ids
from wordgpt.training.trainer import COMPILE_MIN_BUDGET, compiles

from .helpers import make_trainer

pytestmark = pytest.mark.slow  # end to end: not in make test-fast

STEPS = 6


def test_compiled_training_follows_eager_training_and_samples_the_same_text(word_data):
    """Tolerance: losses within 1e-4 relative, weights within 1e-4 absolute but for at most
    1 % of a tensor, and those within two steps (the compiled kernels fuse operations, so they
    round differently; the updates are 3e-3 a step, and where a gradient is near zero, as on
    a rare word's embedding, rounding can turn the sign of its Adam step: seen on a CPU with
    AVX-512, one embedding weight 2.8e-3 apart and 28 of 4,096 of the first MLP's within
    3e-4)."""
    eager = make_trainer(word_data, compile=False)
    compiled = make_trainer(word_data, compile=True)
    assert getattr(compiled.run_model, "_orig_mod", None) is compiled.model  # what is saved
    start = compiled.model.h[0].attn.qkv.weight.detach().clone()
    a = [eager.train_step().loss for _ in range(STEPS)]
    b = [compiled.train_step().loss for _ in range(STEPS)]
    assert b == pytest.approx(a, rel=1e-4) and b[-1] < b[0]
    assert not torch.equal(compiled.model.h[0].attn.qkv.weight, start)
    trained = eager.model.state_dict()
    for k, v in compiled.state_dict()["model"].items():
        diff = (v - trained[k]).abs()
        assert diff.max() <= 6e-3 and (diff > 1e-4).float().mean() <= 0.01, k
    prompt = [int(i) for i in load_split(word_data, "val")[:5]]
    cfg = SampleConfig(max_new_tokens=10, temperature=0, seed=0)
    ours = list(generate_ids(compiled.run_model, prompt, cfg))  # handed the wrapper
    assert ours == list(generate_ids(eager.model, prompt, cfg)) and len(ours) == 10


@pytest.mark.parametrize(
    ("device", "asked", "budget", "expected"),
    [
        ("cuda", None, None, True),  # no budget: a long run
        ("cuda", None, COMPILE_MIN_BUDGET, True),
        ("cuda", None, 60.0, False),  # compiling would eat half of it
        ("cuda", True, 60.0, True),  # asked for: always
        ("cuda", False, None, False),
        ("cpu", None, None, False),
        ("cpu", True, 60.0, True),
    ],
)
def test_compile_by_default_only_on_cuda_runs_long_enough_to_win_it_back(
    device, asked, budget, expected
):
    cfg = TrainConfig(compile=asked)
    cfg = replace(cfg, stop=replace(cfg.stop, time_budget=budget))
    assert compiles(cfg, torch.device(device)) is expected
