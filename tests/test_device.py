"""Devices and the dtype `--dtype auto` picks on a CPU: a measured probe, cached whatever the
load; the peak FLOP/s, measured again while its cached value was read on a busy machine."""

from __future__ import annotations

import json

import pytest
import torch

from wordgpt.errors import WordGPTError
from wordgpt.model import device


class FakeTimer:
    """Seconds per step for each dtype, from lists consumed one call at a time."""

    def __init__(self, fp32: list[float], bf16: list[float]):
        self.left = {None: list(fp32), torch.bfloat16: list(bf16)}
        self.calls = 0

    def __call__(self, dtype):
        self.calls += 1
        return self.left[dtype].pop(0)


@pytest.fixture
def quiet_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("WORDGPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(device, "native_bf16", lambda: True)
    monkeypatch.setattr(device, "_cpu_seconds_of_others", lambda: 0.0)
    return tmp_path / "dtype-probe.json"


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"),
    [(1.0, 0.5, True), (1.0, 0.95, False), (0.5, 1.0, False)],
)
def test_the_probe_picks_bf16_only_when_clearly_faster(quiet_machine, fp32, bf16, expected):
    timer = FakeTimer([fp32] * 3, [bf16] * 3)
    assert device.cpu_prefers_bf16("w", timer) is expected
    assert timer.calls == 6


def test_the_probe_takes_the_best_of_interleaved_rounds(quiet_machine):
    r = device.probe_cpu_dtype(FakeTimer([1.0, 1.1, 1.05], [0.7, 0.6, 0.65]))
    assert (r["fp32_s"], r["bf16_s"], r["bf16"], r["quiet"]) == (1.0, 0.6, True, True)


def test_a_quiet_answer_is_cached_and_not_measured_again(quiet_machine, capsys):
    assert device.cpu_prefers_bf16("w", FakeTimer([1.0] * 3, [0.5] * 3))
    assert "timing fp32 against bf16" in capsys.readouterr().out  # a wait is announced
    again = FakeTimer([], [])
    assert device.cpu_prefers_bf16("w", again) and again.calls == 0
    assert "timing" not in capsys.readouterr().out  # and a cached answer is silent
    (entry,) = json.loads(quiet_machine.read_text()).values()
    assert entry["bf16"] is True
    other = FakeTimer([0.5] * 3, [1.0] * 3)  # another workload is measured on its own
    assert not device.cpu_prefers_bf16("other", other) and other.calls == 6


def test_a_probe_on_a_busy_machine_is_cached_too_and_never_run_again(quiet_machine, monkeypatch):
    """Other processes kept every core busy while it ran: both dtypes slowed down alike, so
    the answer stands and is kept; the next run reads it (a start-up that costs what it
    says: seconds once, not at every run)."""
    spent = iter([0.0, 1e6])
    monkeypatch.setattr(device, "_cpu_seconds_of_others", lambda: next(spent))
    r = device.probe_cpu_dtype(FakeTimer([1.0] * 3, [0.5] * 3))
    assert r["others_load"] > 1 and not r["quiet"] and r["bf16"]
    spent = iter([0.0, 1e6])
    assert device.cpu_prefers_bf16("w", FakeTimer([1.0] * 3, [0.5] * 3))
    again = FakeTimer([], [])
    assert device.cpu_prefers_bf16("w", again) and again.calls == 0


def test_without_native_bf16_the_probe_says_fp32_without_timing(quiet_machine, monkeypatch):
    monkeypatch.setattr(device, "native_bf16", lambda: False)
    timer = FakeTimer([], [])
    assert not device.cpu_prefers_bf16("w", timer) and timer.calls == 0


def test_auto_uses_the_probe_on_a_cpu_and_fp32_is_fp32():
    cpu = torch.device("cpu")
    assert device.autocast_dtype("auto", cpu, probe=lambda: True) is torch.bfloat16
    assert device.autocast_dtype("auto", cpu, probe=lambda: False) is None
    assert device.autocast_dtype("fp32", cpu, probe=lambda: True) is None
    assert device.autocast_dtype("bf16", cpu) is torch.bfloat16


@pytest.mark.parametrize(
    ("spec", "words"),
    [("gpu0", "unknown device"), ("cuda:7", "CUDA"), ("fpga", "not supported")],
)
def test_devices_that_do_not_exist_are_one_clear_error(spec, words):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(WordGPTError, match=words):
        device.pick_device(spec)


def test_the_peak_is_cached_and_measured_again_only_while_it_was_busy(quiet_machine, monkeypatch):
    cpu = torch.device("cpu")
    spent = iter([0.0, 1e6, 0.0, 0.0])  # busy during the first measurement, quiet after
    monkeypatch.setattr(device, "_cpu_seconds_of_others", lambda: next(spent))
    first = device.peak_flops(cpu, None)
    cached = json.loads((quiet_machine.parent / "peak-flops.json").read_text())
    assert first > 1e8 and list(cached.values()) == [{"flops": first, "quiet": False}]
    second = device.peak_flops(cpu, None)  # measured again, on a quiet machine: the best kept
    cached = json.loads((quiet_machine.parent / "peak-flops.json").read_text())
    assert list(cached.values()) == [{"flops": max(first, second), "quiet": True}]
    monkeypatch.setattr(device, "_matmul_seconds", lambda *a: pytest.fail("measured again"))
    assert device.peak_flops(cpu, None) == max(first, second)
    assert device.peak_flops(torch.device("meta"), None) is None


@pytest.mark.parametrize(
    "capability, expected", [((7, 0), torch.float16), ((8, 0), torch.bfloat16)]
)
def test_auto_on_a_gpu_takes_bf16_only_where_it_is_native(monkeypatch, capability, expected):
    """A V100 or T4 (compute capability 7) only emulates bf16: auto gives it fp16 and its
    gradient scaler; an A100/H100 (8 and up) bf16."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert device.autocast_dtype("auto", torch.device("cuda")) is expected
