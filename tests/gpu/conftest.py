"""Tests that need a CUDA GPU: marked ``gpu``, skipped where CUDA is absent (a skip that
stays a skip under WORDGPT_STRICT=1: a missing GPU is no missing extra)."""

from __future__ import annotations

import pytest
import torch

from ..helpers import load_benchmark


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")


@pytest.fixture(scope="session")
def bench():
    """benchmarks/gpu.py, whose checks these tests run."""
    return load_benchmark("gpu")


@pytest.fixture(scope="module")
def setup(bench, word_data, tmp_path_factory):
    """The checks' quick setup on the first CUDA device (the small model, 24 steps)."""
    work = tmp_path_factory.mktemp("gpu")
    return bench.make_setup(torch.device("cuda"), word_data, work, quick=True)
