"""The checks of benchmarks/gpu.py as tests, on CUDA: ``pytest -m gpu tests/gpu``."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def passed(row: dict) -> dict:
    assert row["status"] == "ok", row["why"]
    return row["figures"]


def test_bf16_autocast_trains_in_bf16(bench, setup):
    f = passed(bench.check_bf16(setup))
    assert f["ran"] == ["bfloat16"] and f["loss_after"] < f["loss_before"] - 0.1


def test_fp16_with_the_grad_scaler_trains(bench, setup):
    f = passed(bench.check_fp16(setup))
    assert f["ran"] == ["float16"] and f["scale"] > 0 and f["overflows"] < setup.steps // 2


def test_a_compiled_run_saves_plain_weights_that_load_uncompiled(bench, setup):
    f = passed(bench.check_compile(setup))
    assert f["prefixed"] == 0 and f["identical"]


def test_the_flash_kernel_runs_every_presets_attention(bench, setup):
    f = passed(bench.check_flash(setup))
    assert f["head_sizes"] == [16, 64]


def test_cached_generation_equals_uncached(bench, setup):
    assert passed(bench.check_cache(setup))["tokens_equal"]


def test_resume_continues_exactly_or_within_the_noise_of_two_runs(bench, setup):
    f = passed(bench.check_resume(setup))
    assert f["max_diff"] == 0 or f["max_diff"] <= bench.RESUME_SLACK * f["noise"]


@pytest.mark.parametrize("check", ["check_seed_steps", "check_compile_speed"])
def test_the_timings_run(bench, setup, check):
    passed(getattr(bench, check)(setup))


def test_the_largest_batch_is_found(bench, setup):
    f = passed(bench.check_largest_batch(setup))
    assert f["batch"] >= 16 and 0 < f["mfu"] < 1
