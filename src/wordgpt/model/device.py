"""Device choice and the dtype/autocast policy, decided on the machine the code runs on.

On CUDA, ``auto`` means bf16 autocast where the GPU has bf16, else fp16 with a gradient
scaler. On a CPU it depends on the chip: with AMX tiles bf16 matrix products are several
times faster than fp32, with AVX-512 bf16 alone they can be slower. No flag tells which, so
``auto`` runs a short probe (forward and backward of the model about to be trained, on a
small batch, each dtype timed the same way) and keeps bf16 only if it is clearly faster. The
answer is cached per machine, torch version, thread count and model in
``cache_dir()/dtype-probe.json``, whatever the load (a busy machine slows both dtypes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable

import torch

from ..errors import WordGPTError
from ..fileio import atomic_write, cache_dir
from ..logs import log

BF16_MARGIN = 0.9
"""bf16 must take at most this fraction of fp32's time to be chosen (fp32 wins ties)."""


def pick_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA, then MPS, then CPU) or a device that exists here; else one clear error."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise WordGPTError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise WordGPTError(f"device {spec!r}: no CUDA GPU is visible to PyTorch here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise WordGPTError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise WordGPTError(f"device {spec!r}: Apple MPS is not available here")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise WordGPTError(f"device {spec!r} is not supported; use auto, cpu, cuda or mps")
    return dev


def autocast_dtype(
    dtype: str,
    device: torch.device,
    probe: Callable[[], bool] | None = None,
) -> torch.dtype | None:
    """The autocast dtype for a ``dtype`` setting on ``device``, or None for plain fp32.

    ``probe`` answers, for ``auto`` on a CPU, whether bf16 is the faster choice for the
    workload at hand (see :func:`cpu_prefers_bf16`); without one, a CPU uses fp32."""
    if dtype == "fp32":
        return None
    if dtype == "fp16":
        if device.type != "cuda":
            raise WordGPTError("fp16 needs CUDA; use --dtype bf16 or fp32")
        return torch.float16
    if dtype == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if native_cuda_bf16(device) else torch.float16
    if device.type == "cpu" and probe is not None and probe():
        return torch.bfloat16
    return None


def native_cuda_bf16(device: torch.device) -> bool:
    """Whether this GPU computes in bf16 natively (compute capability 8 and up: A100, H100,
    RTX 30xx); older cards (V100, T4) only emulate it, slowly, so fp16 is their choice."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def dtype_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# ------------------------------------------------------------------------ memory


def memory_needed(cfg, batch_size: int = 0) -> tuple[float, float]:
    """Bytes to train ``GPT(cfg)`` on batches of ``batch_size`` sequences, about: (the
    weights, gradients and two AdamW moments in fp32, 16 bytes a parameter; the activations
    and the batch, per sequence). Activations follow Korthikanti et al. (2022): per layer and
    token 34 C + 5 nh T values, counted at 4 bytes, and the output layer's logits and their
    gradient."""
    from .gpt import estimate_params

    C, T, L, nh = cfg.n_embd, cfg.block_size, cfg.n_layer, cfg.n_head
    adaptive = cfg.head == "adaptive" and cfg.adaptive_cutoffs()
    head = cfg.adaptive_cutoffs()[0] + len(cfg.adaptive_cutoffs()) if adaptive else cfg.vocab_size
    per_sequence = T * (L * (34 * C + 5 * nh * T) * 4 + head * 8 + 16)
    return estimate_params(cfg) * 16.0, float(per_sequence)


def machine_memory(device: str = "auto") -> tuple[float, str]:
    """Bytes of memory the model will live in, and its name: the GPU's when training goes
    to CUDA, else this machine's RAM."""
    if device != "cpu" and torch.cuda.is_available() and device.startswith(("cuda", "auto")):
        index = int(device.split(":")[1]) if ":" in device else 0
        return float(torch.cuda.get_device_properties(index).total_memory), "GPU"
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "machine"


def check_memory(cfg, batch_size: int = 0, device: str = "auto", doing: str = "train") -> None:
    """Refuse, before anything is built, a model (and, to train, a batch) that cannot fit in
    memory: to train, what :func:`memory_needed` counts; to use a model, its weights. The
    message says what would fit."""
    from .gpt import estimate_params

    total, where = machine_memory(device)
    if doing != "train":
        need = estimate_params(cfg) * 4.0
        if need > total:
            raise WordGPTError(
                f"a model of {estimate_params(cfg):,} parameters needs about "
                f"{need / 1e9:,.1f} GB to {doing}, more than this {where}'s {total / 1e9:,.0f} GB"
            )
        return
    fixed, per_sequence = memory_needed(cfg, batch_size)
    if fixed + batch_size * per_sequence <= total:
        return
    fits = int((total - fixed) // per_sequence) if total > fixed else 0
    hint = (
        f"at most --batch-size {fits:,} fits (with --grad-accum for a larger batch)"
        if fits >= 1
        else "not even one sequence fits: use a smaller model"
    )
    raise WordGPTError(
        f"training {estimate_params(cfg):,} parameters on batches of {batch_size:,} x "
        f"{cfg.block_size:,} tokens needs about {(fixed + batch_size * per_sequence) / 1e9:,.1f}"
        f" GB ({fixed / 1e9:,.1f} GB of weights and optimiser state, "
        f"{batch_size * per_sequence / 1e9:,.1f} GB of activations), more than this {where}'s "
        f"{total / 1e9:,.0f} GB; {hint}"
    )


# ------------------------------------------------------------------------ the CPU probe


def machine_key(threads: bool = True) -> str:
    """What a probe's answer depends on: the CPU, its flags, torch, the thread count (unless
    ``threads`` is False: a probe that times every count)."""
    cpu, flags = "", ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", errors="replace") as f:
        for line in f:
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].strip()
                break
    cpu = cpu or platform.processor() or platform.machine()
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    key = f"{cpu} | flags {digest} | torch {torch.__version__}"
    return f"{key} | {torch.get_num_threads()} threads" if threads else key


def step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reps: int = 2):
    """A function of the dtype giving the best-of-``reps`` seconds of one forward and backward
    pass of ``model(x, y)`` (a loss) on the CPU, after a warm-up; gradients are dropped."""

    def timer(dtype: torch.dtype | None) -> float:
        best = float("inf")
        for _ in range(reps + 1):
            t = time.perf_counter()
            with autocast(torch.device("cpu"), dtype):
                loss = model(x, y)
            loss.backward()
            best = min(best, time.perf_counter() - t)
        model.zero_grad(set_to_none=True)
        return best

    return timer


def native_bf16() -> bool:
    """Whether this CPU has bf16 instructions that oneDNN uses (AVX-512 bf16, AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cpu_seconds_of_others() -> float | None:
    """CPU seconds the whole machine has spent busy, minus this process's (Linux only)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return busy - time.process_time()


def with_others_load(fn: Callable[[], object]) -> tuple[object, float | None]:
    """``fn()``, and the share of this machine's cores that other processes kept busy while
    it ran (None where /proc/stat cannot tell)."""
    others0, t0 = _cpu_seconds_of_others(), time.perf_counter()
    result = fn()
    others1, wall = _cpu_seconds_of_others(), time.perf_counter() - t0
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if others0 is None or others1 is None:
        return result, None
    return result, (others1 - others0) / (max(wall, 1e-9) * (ncpu or 1))


class ProbeCache:
    """Answers measured on this machine, kept in ``cache_dir()/NAME.json`` by key; a cache
    that cannot be written only costs the time of measuring again."""

    def __init__(self, name: str):
        self.path = cache_dir() / f"{name}.json"

    def _all(self) -> dict:
        try:
            d = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return d if isinstance(d, dict) else {}

    def get(self, key: str):
        return self._all().get(key)

    def put(self, key: str, value) -> None:
        d = self._all()
        d[key] = value
        with contextlib.suppress(OSError, WordGPTError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(d, indent=1))


def probe_cpu_dtype(timer: Callable[[torch.dtype | None], float], rounds: int = 3) -> dict:
    """Time fp32 and bf16 (interleaved rounds, best of each); bf16 only if it is clearly
    faster. ``quiet`` says whether the machine was left to the probe: other processes used
    under a fifth of its cores meanwhile, and each dtype's rounds agreed within 25 %."""
    if not native_bf16():
        return {"bf16": False, "reason": "no native bf16 on this CPU", "quiet": True}
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def rounds_of_both() -> None:
        for _ in range(rounds):
            times["fp32"].append(timer(None))
            times["bf16"].append(timer(torch.bfloat16))

    _, load = with_others_load(rounds_of_both)
    steady = all(max(v) < 1.25 * min(v) for v in times.values())
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    return {
        "bf16": bf16 < BF16_MARGIN * fp32,
        "fp32_s": fp32,
        "bf16_s": bf16,
        "others_load": load,
        "quiet": steady and (load is None or load < 0.2),
    }


def cpu_prefers_bf16(workload: str, timer: Callable[[torch.dtype | None], float]) -> bool:
    """Whether bf16 autocast is faster than fp32 for ``workload`` (a description of the model
    and batch that ``timer`` runs) on this machine: measured once, then read from the cache."""
    cache, key = ProbeCache("dtype-probe"), f"{machine_key()} | {workload}"
    if isinstance(cached := cache.get(key), dict) and "bf16" in cached:
        return bool(cached["bf16"])
    if native_bf16():  # without, fp32 and nothing to time
        log.info("timing fp32 against bf16 on this CPU for this model (a few seconds, once)")
    result = probe_cpu_dtype(timer)
    cache.put(key, result)  # kept whatever the load: busy, both dtypes slow down alike
    return bool(result["bf16"])


# ------------------------------------------------------------------------ the peak, for MFU


def _matmul_seconds(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return (time.perf_counter() - t) / reps


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None) -> float | None:
    """Model-FLOP utilisation: the achieved FLOP/s over the peak (None: no peak known, or
    nothing trained yet)."""
    return tokens_per_s * flops_per_token / peak if peak and tokens_per_s > 0 else None


def peak_flops(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """The FLOP/s of a large matrix product in ``dtype`` (None: fp32) on ``device``: the
    peak that model-FLOP utilisation is measured against. Measured per machine, torch
    version and thread count (best of three rounds) and cached, whatever the load; one
    measured while other programs had the cores is measured again at the next call, and the
    higher kept, until a quiet one is. None on MPS."""
    if device.type not in ("cpu", "cuda"):
        return None
    dtype = dtype or torch.float32
    name = str(dtype).removeprefix("torch.")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else machine_key()
    cache, key = ProbeCache("peak-flops"), f"{where} | {name}"
    cached = cache.get(key)
    if isinstance(cached, int | float):  # cached before the load was kept beside it
        cached = {"flops": float(cached), "quiet": True}
    if isinstance(cached, dict) and cached.get("quiet"):
        return float(cached["flops"])
    n = 8192 if device.type == "cuda" else 1024
    if device.type == "cpu" and dtype == torch.bfloat16 and not native_bf16():
        n = 256  # emulated bf16 runs at a hundredth of fp32's speed: a smaller product
    best, load = with_others_load(
        lambda: min(_matmul_seconds(device, dtype, n, 4) for _ in range(3))
    )
    flops = 2 * n**3 / best
    if isinstance(cached, dict) and float(cached.get("flops", 0)) > flops:
        flops = float(cached["flops"])  # an earlier busy reading that was higher
    cache.put(key, {"flops": flops, "quiet": load is None or load < 0.2})
    return flops
