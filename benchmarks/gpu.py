"""The GPU path, end to end: one command that checks on a device what CUDA training relies
on, then times the notebook's model there. Each row says ok, FAILED or skipped, why, and its
figures; the exit status is 1 if any check FAILED.

    python benchmarks/gpu.py                                # CUDA if there is one, else CPU
    python benchmarks/gpu.py --device cpu --quick --json    # what tests/test_gpu_script.py runs
    python benchmarks/gpu.py --only f,g                     # some checks again

  a  bf16 autocast training lowers the loss, and the Linear layers really ran in bf16
  b  fp16 autocast with the GradScaler trains (CUDA only: wordgpt refuses fp16 elsewhere)
  c  compiled training (compile=True) writes weight names without _orig_mod./module. that
     load into an uncompiled GPT, identical
  d  SDPA's flash kernel alone runs every preset's attention, forward and backward, and agrees
     with the math kernel (on a CPU: PyTorch's CPU flash kernel, without dropout)
  e  greedy generation with the KV cache equals generation without it
  f  a run cut in two and resumed ends with the weights of an uninterrupted run: bit-exact, or
     on CUDA within RESUME_SLACK times the difference between two uninterrupted runs
     (flash attention's backward adds into dQ atomically, in no fixed order)
  g  the seed preset's steps (batch 16, block 128): wordgpt's GPT and the notebook-style
     ReferenceGPT, tokens/s, MFU, their ratio, and the preset's 5000 steps extrapolated
  h  torch.compile, and CUDA graphs (mode="reduce-overhead", CUDA only), on that batch
  i  MFU at the largest batch that fits (CUDA only)

--quick: a 2-layer, 32-wide model and a slice of the book for every check and timing
(under a minute on 2 CPU cores). Without it, on a CPU, g and h train the 32-layer seed model
for many seconds a step: expect tens of minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from common import emit, prepared, quiet
from torch.nn.attention import SDPBackend, sdpa_kernel

import wordgpt
from tests.reference_model import ReferenceGPT
from wordgpt.config import DataConfig, ModelConfig, SampleConfig, TrainConfig
from wordgpt.corpus.build import prepare
from wordgpt.corpus.sources import resolve_one
from wordgpt.corpus.tokenfiles import load_meta, load_split
from wordgpt.errors import DataError, WordGPTError
from wordgpt.model.device import autocast, autocast_dtype, dtype_name, peak_flops, pick_device
from wordgpt.model.gpt import GPT, estimate_flops
from wordgpt.model.sampling import generate_ids
from wordgpt.presets import NOTEBOOK_MODEL, PRESETS, preset_configs
from wordgpt.runs import checkpoint
from wordgpt.settings import with_settings
from wordgpt.training.trainer import Trainer

PLAIN = {**NOTEBOOK_MODEL, "dropout": 0.0}
"""The checks' and the quick timings' model parts: the original notebook's plain model (learned
positions, full softmax, ReLU), without dropout (the defaults are the cpu recipe's)."""
CHECK_MODEL = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64}
"""The model of checks a-f."""
QUICK_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
"""Under --quick, the model of every check and timing."""
STEPS = {False: 60, True: 24}
"""Training steps of a check (by --quick)."""
TIMED_STEPS = {False: 10, True: 4}
"""Timed steps of a timing, after WARMUP_STEPS (by --quick)."""
CHECK_TRAIN = {"batch_size": 16, "lr": 3e-3, "warmup": 0.0, "decay": "cosine", "eval_iters": 4,
               "time_budget": None, "epochs": None, "compile": False}  # fmt: skip
"""A check's training: by steps alone (no time budget, no cap on passes), cosine decay."""
QUICK_CHARS = 60_000
"""--quick trains on this many characters of the book, from its first chapter."""
LOWER = 0.1
"""A check's training must lower the val loss by at least this much (nats)."""
RESUME_SLACK = 10.0
"""On CUDA a resumed run may differ from an uninterrupted one by this many times the
difference between two uninterrupted runs (none: it must be bit-exact)."""
CACHE_TOL = {"cpu": 1e-5, "cuda": 1e-4}
"""Cached and uncached logits may differ by this fraction of the largest: the kernels for one
position and for many add in other orders (on CUDA, with other splits of the sums)."""
FLASH_VOCAB = 512
"""The flash check's vocabulary: its models are one block of each preset's shape."""
WARMUP_STEPS = 3
"""Untimed steps before a timing (the first ones compile, and capture CUDA graphs)."""
MAX_BATCH = 4096
"""The largest batch check i tries (doubling from the preset's 16)."""
SEED_MODEL, SEED_TRAIN = preset_configs("seed")


@dataclass(frozen=True)
class Setup:
    """What every check gets: the device, a prepared data folder, a scratch folder, and the
    models and step counts to use."""

    device: torch.device
    data: Path
    work: Path
    small: ModelConfig
    """The model of checks a-f."""
    timed: ModelConfig
    """The model of the timings g-i: the seed preset's, or the small one under --quick."""
    steps: int
    """Training steps of a check."""
    timed_steps: int
    quick: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def dtype(self) -> torch.dtype | None:
        """What ``--dtype auto`` trains in here: bf16 (or fp16) on CUDA; fp32 on a CPU."""
        return autocast_dtype("auto", self.device) if self.cuda else None


def make_setup(device: torch.device, data: Path, work: Path, quick: bool) -> Setup:
    V = load_meta(data)["vocab_size"]
    small = ModelConfig(vocab_size=V, **PLAIN, **(QUICK_MODEL if quick else CHECK_MODEL))
    timed = small if quick else replace(SEED_MODEL, vocab_size=V)
    return Setup(
        device, Path(data), Path(work), small, timed, STEPS[quick], TIMED_STEPS[quick], quick
    )


def verdict(good: bool, why: str, **figures) -> dict:
    return {"status": "ok" if good else "FAILED", "why": why, "figures": figures}


def skipped(why: str) -> dict:
    return {"status": "skipped", "why": why, "figures": {}}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_for(s: Setup, cfg: ModelConfig, dtype, cls=GPT, **train_kw) -> Trainer:
    """A seeded model of class ``cls`` on the device and its Trainer (uncompiled unless asked)."""
    torch.manual_seed(0)
    model = cls(cfg).to(s.device)
    _, tcfg = with_settings(cfg, TrainConfig(), {**CHECK_TRAIN, "max_iters": s.steps, **train_kw})
    splits = load_split(s.data, "train"), load_split(s.data, "val")
    return Trainer(model, tcfg, *splits, s.device, dtype)


def train_watching_dtype(t: Trainer, steps: int) -> tuple[float, float, list[str]]:
    """The val loss before and after ``steps`` steps, and the dtypes the first block's first
    Linear produced meanwhile (what autocast really ran)."""
    seen: set[str] = set()
    fc = t.model.h[0].mlp.fc
    hook = fc.register_forward_hook(lambda m, i, o: seen.add(str(o.dtype).removeprefix("torch.")))
    try:
        before = t.estimate_loss()["val"]
        for _ in range(steps):
            t.train_step()
        after = t.estimate_loss()["val"]
    finally:
        hook.remove()
    return before, after, sorted(seen)


# ------------------------------------------------------------------------ a-f: the checks


def check_bf16(s: Setup) -> dict:
    t = trainer_for(s, s.small, autocast_dtype("bf16", s.device))
    before, after, ran = train_watching_dtype(t, s.steps)
    return verdict(
        after < before - LOWER and ran == ["bfloat16"],
        f"val loss {before:.3f} -> {after:.3f} in {s.steps} steps; "
        f"the first Linear's output: {', '.join(ran)}",
        loss_before=before,
        loss_after=after,
        ran=ran,
    )


def check_fp16(s: Setup) -> dict:
    try:
        dtype = autocast_dtype("fp16", s.device)
    except WordGPTError as e:
        return skipped(f"wordgpt refuses fp16 off CUDA: {e}")
    t = trainer_for(s, s.small, dtype)
    scale0 = t.scaler.get_scale()
    before, after, ran = train_watching_dtype(t, s.steps)
    scale = t.scaler.get_scale()
    overflows = round(math.log2(scale0 / scale))  # halved at each overflow; no growth this soon
    good = (
        t.scaler.is_enabled()
        and "scaler" in t.state_dict()
        and ran == ["float16"]
        and after < before - LOWER
    )
    return verdict(
        good,
        f"val loss {before:.3f} -> {after:.3f} in {s.steps} steps; GradScaler scale "
        f"{scale0:g} -> {scale:g} ({overflows} steps skipped on overflow); "
        f"the first Linear's output: {', '.join(ran)}",
        loss_before=before,
        loss_after=after,
        ran=ran,
        scale=scale,
        overflows=overflows,
    )


def run_settings(s: Setup) -> dict:
    """:func:`wordgpt.train` settings for a check's run: the small model on the tiny preset
    (the notebook's plain model, by steps), quiet (``main`` quiets the ``wordgpt`` logger)."""
    m = s.small
    return dict(
        preset="tiny",
        n_layer=m.n_layer,
        n_head=m.n_head,
        n_embd=m.n_embd,
        block_size=m.block_size,
        batch_size=16,
        lr=3e-3,
        warmup=0.0,
        eval_iters=4,
        eval_interval=s.steps,
        device=str(s.device),
        dtype="bf16" if s.cuda else "fp32",
        compile=False,
        progress=False,
        tensorboard=False,
    )


def check_compile(s: Setup) -> dict:
    run = s.work / "compiled"
    r = wordgpt.train(s.data, run, **{**run_settings(s), "max_iters": s.steps, "compile": True})
    saved = checkpoint.read(run / "last.pt")["model"]
    prefixed = [k for k in saved if k.startswith(("_orig_mod.", "module."))]
    m = wordgpt.load(run, "last", device=str(s.device))
    loaded = m.gpt.state_dict()
    same = type(m.gpt) is GPT and loaded.keys() == saved.keys()
    same = same and all(torch.equal(v.cpu(), saved[k]) for k, v in loaded.items())
    uniform = math.log(s.small.vocab_size)
    return verdict(
        r.step == s.steps and not prefixed and same and r.last_val < uniform - LOWER,
        f"{r.step} compiled steps, val loss {r.last_val:.3f} (uniform {uniform:.3f}); "
        f"{len(prefixed)} prefixed names in last.pt; an uncompiled GPT loads it with "
        f"{'identical' if same else 'DIFFERENT'} weights",
        step=r.step,
        val_loss=r.last_val,
        prefixed=len(prefixed),
        identical=same,
    )


def attention_figures(cfg: ModelConfig, s: Setup, backend) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a seeded ``GPT(cfg)`` in training mode, and the first qkv weight's gradient
    (of their mean square), with SDPA limited to ``backend``."""
    torch.manual_seed(0)
    gpt = GPT(cfg).to(s.device)
    x = torch.randint(cfg.vocab_size, (2, cfg.block_size), device=s.device)
    with sdpa_kernel(backend), autocast(s.device, s.dtype):
        logits = gpt(x).float()
    logits.square().mean().backward()
    return logits.detach(), gpt.h[0].attn.qkv.weight.grad.float()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def check_flash(s: Setup) -> dict:
    worst, sizes = 0.0, set()
    flash, plain = SDPBackend.FLASH_ATTENTION, SDPBackend.MATH
    # one block of each preset, with its attention's shape; projections not zero-initialised,
    # so that attention reaches the logits; no dropout, so that the two kernels can agree
    for name in PRESETS:
        model, _ = preset_configs(name)
        cfg = replace(
            model,
            vocab_size=FLASH_VOCAB,
            n_layer=1,
            zero_init_proj=False,
            dropout=0.0,
            attn_dropout=0.0,
        )
        sizes.add(cfg.n_embd // cfg.n_head)
        (fa, ga), (ma, gm) = attention_figures(cfg, s, flash), attention_figures(cfg, s, plain)
        worst = max(worst, relative(fa, ma), relative(ga, gm))
        if s.cuda:  # the preset's own dropout, which the CUDA flash kernel draws itself
            attention_figures(
                replace(cfg, dropout=model.dropout, attn_dropout=model.attn_dropout), s, flash
            )
    tol = 5e-2 if s.dtype is not None else 1e-4
    where = (
        f"CUDA's flash kernel in {dtype_name(s.dtype)}, with each preset's dropout too"
        if s.cuda
        else "PyTorch's CPU flash kernel in fp32, without dropout (it has none)"
    )
    return verdict(
        worst < tol,
        f"head sizes {sorted(sizes)} ({len(PRESETS)} presets): forward and backward with the "
        f"flash kernel alone, largest difference from the math kernel {worst:.1e} of the "
        f"largest value (< {tol:g}); {where}",
        head_sizes=sorted(sizes),
        max_rel_diff=worst,
        tolerance=tol,
    )


@contextlib.contextmanager
def without_tf32():
    """Plain fp32 matrix products (what a fresh process samples with), restored after."""
    was = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = was


def greedy(gpt: GPT, idx: torch.Tensor, n: int, use_cache: bool):
    """``n`` greedy ids (B, n) after each row of ``idx`` (B, P), drawn by wordgpt's generation
    loop (:func:`~wordgpt.use.generate.generate_ids`, one prompt at a time), and the logits
    each was picked from (B tensors of (n, V)): the last position of each forward pass, which
    the loop makes once per new token, with the cache or without."""
    cfg = SampleConfig(max_new_tokens=n, temperature=0, seed=0, use_cache=use_cache)
    seen: list[torch.Tensor] = []
    hook = gpt.register_forward_hook(lambda m, i, out: seen.append(out[:, -1].float()))
    ids, logits = [], []
    try:
        for row in idx.tolist():
            seen.clear()
            ids.append(list(generate_ids(gpt, row, cfg)))
            logits.append(torch.cat(seen))
    finally:
        hook.remove()
    return torch.tensor(ids, device=idx.device), logits


def check_cache(s: Setup) -> dict:
    t = trainer_for(s, s.small, None)
    for _ in range(s.steps):
        t.train_step()
    gpt, B, P = t.model.eval(), 4, 4
    prompts = torch.from_numpy(load_split(s.data, "val")[: B * P].astype("int64"))
    prompts = prompts.view(B, P).to(s.device)
    n = s.small.block_size - P  # within the block: past it the two decode other windows
    with without_tf32():
        (a, la), (b, lb) = greedy(gpt, prompts, n, True), greedy(gpt, prompts, n, False)
    diff = max(relative(x, y) for x, y in zip(la, lb, strict=True))
    same, tol = torch.equal(a, b), CACHE_TOL["cuda" if s.cuda else "cpu"]
    return verdict(
        same and diff < tol,
        f"{B} prompts x {n} greedy tokens: {'equal' if same else 'DIFFERENT'}; largest logit "
        f"difference {diff:.1e} of the largest logit (< {tol:g}; fp32, no TF32)",
        tokens_equal=same,
        tokens=B * n,
        max_logit_diff=diff,
        tolerance=tol,
    )


def final_weights(r) -> dict[str, torch.Tensor]:
    return checkpoint.read(Path(r.run_dir) / "last.pt")["model"]


def largest_difference(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def check_resume(s: Setup) -> dict:
    """Dropout on, so that its random state must continue too; a constant learning rate, so
    that the cut run's schedule is the first half of the uninterrupted one's."""
    h = s.steps // 2
    kw = {**run_settings(s), "dropout": 0.1, "min_lr_ratio": 1.0, "eval_interval": h}
    straight = final_weights(wordgpt.train(s.data, s.work / "straight", max_iters=2 * h, **kw))
    wordgpt.train(s.data, s.work / "cut", max_iters=h, **kw)
    more = {"progress": False, "tensorboard": False}
    resumed = wordgpt.train(s.data, s.work / "cut", resume=True, max_iters=2 * h, **more)
    diff = largest_difference(straight, final_weights(resumed))
    noise = 0.0
    if s.cuda and diff > 0:
        again = wordgpt.train(s.data, s.work / "again", max_iters=2 * h, **kw)
        noise = largest_difference(straight, final_weights(again))
    good = resumed.step == 2 * h and (diff == 0 or diff <= RESUME_SLACK * noise)
    how = "bit-exact" if diff == 0 else f"largest weight difference {diff:.1e}"
    if s.cuda and diff > 0:
        how += (
            f", two uninterrupted runs differ by {noise:.1e} (allowed: {RESUME_SLACK:g}x that; "
            "flash attention's backward adds atomically)"
        )
    elif diff > 0:
        how += " (a CPU run must be bit-exact)"
    return verdict(
        good,
        f"{h} steps, resume, {h} more (dropout 0.1) against {2 * h} straight: {how}",
        step=resumed.step,
        max_diff=diff,
        noise=noise,
    )


# ------------------------------------------------------------------------ g-i: the timings


def timed_steps(t: Trainer, n: int, graphs: bool) -> tuple[float, float]:
    """Seconds of ``n`` training steps (the device synchronised) and the last loss."""
    sync(t.device)
    t0 = time.perf_counter()
    for _ in range(n):
        if graphs:  # a new iteration: CUDA graphs may reuse the last one's outputs
            torch.compiler.cudagraph_mark_step_begin()
        loss = t.train_step().loss
    sync(t.device)
    return time.perf_counter() - t0, loss


def speed(s: Setup, cls=GPT, batch: int = SEED_TRAIN.batch_size, mode: str | None = None):
    """Training speed of ``cls(s.timed)`` with the seed preset's recipe: eager, compiled by
    the trainer (``mode="default"``), or compiled with CUDA graphs (``"reduce-overhead"``)."""
    t = trainer_for(
        s,
        s.timed,
        s.dtype,
        cls,
        batch_size=batch,
        lr=SEED_TRAIN.optim.lr,
        max_iters=10**6,
        compile=mode == "default",
    )
    graphs = mode == "reduce-overhead"
    if graphs:  # the trainer's own compile has the default mode
        t.run_model = torch.compile(t.model, mode=mode)
    warm_s, _ = timed_steps(t, WARMUP_STEPS, graphs)
    secs, loss = timed_steps(t, s.timed_steps, graphs)
    step_s = secs / s.timed_steps
    tokens_per_s = batch * s.timed.block_size / step_s
    peak = peak_flops(s.device, s.dtype)
    mfu = tokens_per_s * estimate_flops(s.timed) / peak if peak else None
    return {
        "s_per_step": step_s,
        "tokens_per_s": tokens_per_s,
        "mfu": mfu,
        "warmup_s": warm_s,
        "loss": loss,
        "batch": batch,
    }


def timed_model(s: Setup) -> str:
    m = s.timed
    name = "the quick model" if s.quick else "the seed preset"
    return (
        f"{name} ({m.n_layer}x{m.n_embd}, {m.n_head} heads, block {m.block_size}, "
        f"{dtype_name(s.dtype)})"
    )


def pct(mfu: float | None) -> str:
    return "-" if mfu is None else f"{mfu:.1%}"


def hms(seconds: float) -> str:
    m, sec = divmod(round(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{sec:02d}s"


def fine(*runs: dict) -> bool:
    return all(r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) for r in runs)


def rate(r: dict) -> str:
    """A timing as the table shows it: tokens/s and MFU."""
    return f"{r['tokens_per_s']:,.0f} tok/s, MFU {pct(r['mfu'])}"


def check_seed_steps(s: Setup) -> dict:
    ours, ref = speed(s), speed(s, ReferenceGPT)
    n = SEED_TRAIN.stop.max_iters
    ratio = ours["tokens_per_s"] / ref["tokens_per_s"]
    return verdict(
        fine(ours, ref),
        f"{timed_model(s)}, batch {ours['batch']}: wordgpt {rate(ours)}, {n} steps in "
        f"{hms(ours['s_per_step'] * n)}; reference {rate(ref)}, "
        f"{hms(ref['s_per_step'] * n)}; wordgpt {ratio:.2f}x",
        wordgpt=ours,
        reference=ref,
        ratio=ratio,
        preset_steps=n,
        wordgpt_preset_s=ours["s_per_step"] * n,
        reference_preset_s=ref["s_per_step"] * n,
    )


def check_compile_speed(s: Setup) -> dict:
    eager, compiled = speed(s), speed(s, mode="default")
    graphs = speed(s, mode="reduce-overhead") if s.cuda else None
    why = (
        f"{timed_model(s)}, batch {eager['batch']}: eager {rate(eager)}; torch.compile "
        f"{faster(compiled, eager)}; "
    )
    why += "CUDA graphs: CUDA only" if graphs is None else f"CUDA graphs {faster(graphs, eager)}"
    good = fine(eager, compiled) and (graphs is None or fine(graphs))
    return verdict(good, why, eager=eager, compiled=compiled, cuda_graphs=graphs)


def faster(r: dict, eager: dict) -> str:
    x = r["tokens_per_s"] / eager["tokens_per_s"]
    return f"{rate(r)} ({x:.2f}x; its first {WARMUP_STEPS} steps {r['warmup_s']:.0f} s)"


def check_largest_batch(s: Setup) -> dict:
    if not s.cuda:
        return skipped("CUDA only: on a CPU time, not memory, bounds the batch")
    best, batch = None, SEED_TRAIN.batch_size
    while batch <= MAX_BATCH:
        torch.cuda.reset_peak_memory_stats(s.device)
        try:
            r = speed(s, batch=batch)
        except torch.cuda.OutOfMemoryError:
            r = None
        gc.collect()  # the failed batch's tensors go before the next try
        torch.cuda.empty_cache()
        if r is None:
            break
        best = {**r, "memory_gb": torch.cuda.max_memory_allocated(s.device) / 1e9}
        batch *= 2
    if best is None:
        return verdict(False, f"batch {SEED_TRAIN.batch_size} does not fit")
    end = f"batch {batch} ran out of memory" if batch <= MAX_BATCH else f"{MAX_BATCH} is the cap"
    return verdict(
        fine(best),
        f"{timed_model(s)} at batch {best['batch']}: {rate(best)}, {best['memory_gb']:.1f} GB; "
        f"{end}",
        **best,
    )


CHECKS = {
    "a": ("bf16 autocast trains", check_bf16),
    "b": ("fp16 + GradScaler trains", check_fp16),
    "c": ("compiled training, plain checkpoint", check_compile),
    "d": ("SDPA flash kernel", check_flash),
    "e": ("KV cache = no cache", check_cache),
    "f": ("resume continues exactly", check_resume),
    "g": ("seed preset: wordgpt vs reference", check_seed_steps),
    "h": ("torch.compile, CUDA graphs", check_compile_speed),
    "i": ("MFU at the largest batch", check_largest_batch),
}
COLUMNS = [
    ("check", "check", "s"),
    ("status", "result", "s"),
    ("why", "figures, or why", "s"),
    ("seconds", "s", ".0f"),
]


# ------------------------------------------------------------------------ running them


def run_check(key: str, name: str, fn, s: Setup) -> dict:
    """One row; a check that raises is a FAILED row (its traceback goes to stderr)."""
    t0 = time.perf_counter()
    try:
        r = fn(s)
    except Exception as e:
        traceback.print_exc()
        r = verdict(False, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    return {"id": key, "check": f"{key}. {name}", **r, "seconds": time.perf_counter() - t0}


def exit_status(rows: list[dict]) -> int:
    return 1 if any(r["status"] == "FAILED" for r in rows) else 0


def data_folder(quick: bool, work: Path) -> Path:
    """Don Quixote in word tokens (under --quick, a slice of it); the Wikipedia sample that
    ships with gensim where the book cannot be found or fetched."""
    try:
        return book_slice(work) if quick else prepared("word")
    except DataError as e:
        print(f"{e}; using the Wikipedia sample", file=sys.stderr)
        return prepared("word", dataset="wikipedia-sample")


def book_slice(work: Path) -> Path:
    """The book's first QUICK_CHARS characters from its first chapter, prepared in ``work``."""
    text = resolve_one("don-quixote").path.read_text(encoding="utf-8")
    start = text.index("CHAPTER I.")
    part = work / "don_quixote_start.txt"
    part.write_text(text[start : start + QUICK_CHARS], encoding="utf-8")
    cfg = DataConfig(dataset=(str(part),), tokenizer="word", space_prefix=False)  # plain words
    prepare(work / "data", cfg, progress=False)
    return work / "data"


def about(s: Setup) -> dict:
    n = torch.get_num_threads()
    where = torch.cuda.get_device_name(s.device) if s.cuda else f"{n} thread{'s' * (n > 1)}"
    shape = ", ".join(f"{k} {getattr(s.small, k)}" for k in CHECK_MODEL)
    return {
        "device": f"{s.device} ({where})",
        "torch": f"{torch.__version__}, CUDA {torch.version.cuda}",
        "checks a-f": f"{shape}, vocabulary {s.small.vocab_size}, {s.steps} steps",
        "timings g-i": timed_model(s),
        "data": str(s.data),
    }


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA if there is one), cuda, cpu")
    ap.add_argument("--quick", action="store_true", help="a tiny model: about a minute on a CPU")
    ap.add_argument("--only", default="".join(CHECKS), help="the checks to run, e.g. a,c,f")
    ap.add_argument("--data", type=Path, help="a prepared data folder (default: the book)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.only = [k for k in CHECKS if k in args.only]
    if not args.only:
        ap.error(f"--only names none of the checks {', '.join(CHECKS)}")
    return args


def main() -> int:
    args = parse_args()
    quiet()  # the table says it all
    device = pick_device(args.device)
    if device.type == "cuda":  # what wordgpt's training sets, whichever check comes first
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    with tempfile.TemporaryDirectory(prefix="wordgpt-gpu-") as tmp:
        data = args.data or data_folder(args.quick, Path(tmp))
        s = make_setup(device, data, Path(tmp), args.quick)
        rows = []
        for key in args.only:
            rows.append(run_check(key, *CHECKS[key], s))
            r = rows[-1]
            print(
                f"{r['check']}: {r['status']} ({r['seconds']:.0f} s)", file=sys.stderr, flush=True
            )
    emit(rows, COLUMNS, args.json, about(s))
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
