"""benchmarks/gpu.py run on the CPU exactly as the README says: every check passes or says
why it was skipped, with sane figures, so that the GPU script cannot rot while no GPU is near.
(On a GPU the same checks run as tests in tests/gpu/.)"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from .helpers import ROOT, load_benchmark

pytestmark = pytest.mark.slow  # end to end: not in make test-fast

CPU_SKIPS = {"b": "fp16 needs CUDA", "i": "CUDA only"}
"""The checks that cannot run on a CPU, and words of the reason each gives."""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    cmd = [sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--quick", "--json"]
    cache = tmp_path_factory.mktemp("cache")  # never the user's cache (the peak is kept there)
    # one thread: a tiny model gains nothing from a second, and two threads on a machine
    # that another process keeps half busy wait on each other (3 minutes instead of 30 s)
    env = {**os.environ, "WORDGPT_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(r.stdout)
    out["by_id"] = {row["id"]: row for row in out["results"]}
    return out


def test_every_check_runs_and_only_the_cuda_ones_are_skipped_with_their_reason(report):
    rows = report["by_id"]
    assert list(rows) == list("abcdefghi")
    for key, row in rows.items():
        assert row["why"].strip(), key
        if key in CPU_SKIPS:
            assert row["status"] == "skipped" and CPU_SKIPS[key] in row["why"], row
        else:
            assert row["status"] == "ok", row
    assert report["device"].startswith("cpu")


def test_training_in_bf16_and_compiled_lowers_the_loss_and_keeps_plain_weights(report):
    a, c = report["by_id"]["a"]["figures"], report["by_id"]["c"]["figures"]
    assert a["ran"] == ["bfloat16"] and a["loss_after"] < a["loss_before"] - 0.1
    assert c["prefixed"] == 0 and c["identical"] and c["val_loss"] < a["loss_before"]


def test_flash_cache_and_resume_are_exact(report):
    d, e, f = (report["by_id"][k]["figures"] for k in "def")
    assert d["head_sizes"] == [16, 64] and d["max_rel_diff"] < d["tolerance"]
    assert e["tokens_equal"] and e["tokens"] > 0 and e["max_logit_diff"] < e["tolerance"]
    assert f["max_diff"] == 0.0 and f["step"] > 0


def test_the_timings_are_sane(report):
    g, h = report["by_id"]["g"]["figures"], report["by_id"]["h"]["figures"]
    runs = [g["wordgpt"], g["reference"], h["eager"], h["compiled"]]
    for r in runs:
        assert r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) and 0 < r["mfu"] < 1
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * 32 / r["s_per_step"])
    assert g["ratio"] == pytest.approx(
        g["wordgpt"]["tokens_per_s"] / g["reference"]["tokens_per_s"]
    )
    assert g["wordgpt_preset_s"] == pytest.approx(g["wordgpt"]["s_per_step"] * 5000)
    assert h["cuda_graphs"] is None


def test_a_check_that_raises_is_a_failed_row_and_a_non_zero_exit(capsys):
    gpu = load_benchmark("gpu")

    def broken(setup):
        raise RuntimeError("no kernel\nfor this")

    row = gpu.run_check("z", "broken", broken, None)
    assert row["status"] == "FAILED" and row["why"] == "RuntimeError: no kernel for this"
    assert "Traceback" in capsys.readouterr().err
    fine = gpu.run_check("y", "fine", lambda s: gpu.skipped("not here"), None)
    assert gpu.exit_status([fine]) == 0 and gpu.exit_status([fine, row]) == 1
