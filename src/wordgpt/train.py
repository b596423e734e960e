"""The training loop: AdamW, warm-up and decay, evaluation, logging, checkpoints, resume, DDP.

The trainer knows nothing about text: it reads token files and a tokenizer's JSON, which it
copies into the run folder so that the run can be loaded on its own.

Run folder::

    config.json     data, model and training configs (recreates the run)
    tokenizer.json  the tokenizer
    metrics.csv     step, train_loss, val_loss, lr, tokens, elapsed_s
    loss.png        train and val loss, redrawn at each evaluation
    last.pt         the latest checkpoint; best.pt the one with the lowest val loss
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import checkpoint, tokenizers
from .config import ModelConfig, TrainConfig, from_dict, get_preset, to_dict
from .data import get_batch, load_meta, load_split
from .errors import CheckpointError, WordGPTError
from .model import GPT, param_groups
from .sample import pick_device

METRICS = ["step", "train_loss", "val_loss", "lr", "tokens", "elapsed_s"]


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    step: int
    best_val: float
    last_val: float
    elapsed_s: float
    tokens_per_s: float
    params: int
    stopped: str
    """Why the loop ended: ``max_iters``, ``time_budget`` or ``signal``."""


def split_overrides(overrides: dict[str, Any]) -> tuple[dict, dict]:
    """Sort keyword overrides into ModelConfig and TrainConfig fields (None values dropped)."""
    model_f = {f.name for f in fields(ModelConfig)}
    train_f = {f.name for f in fields(TrainConfig)}
    m, t = {}, {}
    for k, v in overrides.items():
        if v is None:
            continue
        if k in model_f:
            m[k] = v
        elif k in train_f:
            t[k] = v
        else:
            raise WordGPTError(f"unknown setting {k!r}")
    return m, t


def lr_at(step: int, progress: float, cfg: TrainConfig) -> float:
    """Learning rate: linear warm-up over ``warmup_iters`` steps, then cosine (or stable then
    linear: ``wsd``) decay to ``lr * min_lr_ratio`` as ``progress`` goes from 0 to 1."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.decay == "wsd":
        start = 1.0 - cfg.decay_frac
        t = min(max((progress - start) / max(cfg.decay_frac, 1e-9), 0.0), 1.0)
        return cfg.lr - (cfg.lr - lo) * t
    w = cfg.warmup_iters / cfg.max_iters
    t = min(max((progress - w) / max(1.0 - w, 1e-9), 0.0), 1.0)
    return lo + 0.5 * (1.0 + math.cos(math.pi * t)) * (cfg.lr - lo)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if cfg.dtype == "fp32":
        return None
    if cfg.dtype == "fp16":
        if device.type != "cuda":
            raise WordGPTError("fp16 needs CUDA; use --dtype bf16 or fp32")
        return torch.float16
    if cfg.dtype == "bf16":
        return torch.bfloat16
    # auto
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class _StopFlag:
    """Set by SIGINT/SIGTERM so the loop can save a checkpoint and exit cleanly."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _read_metrics(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= upto]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRICS)
        w.writeheader()
        w.writerows(rows)


@torch.no_grad()
def estimate_loss(model, splits: dict, cfg: TrainConfig, block: int, device, dtype) -> dict:
    """Mean loss over ``eval_iters`` batches per split; the same batches at every evaluation
    (their own seeded generator), so the curve is not noise from batch choice."""
    model.eval()
    out = {}
    for name, data in splits.items():
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        losses = []
        for _ in range(cfg.eval_iters):
            x, y = get_batch(data, cfg.batch_size, block, gen)
            with autocast(device, dtype):
                losses.append(model(x.to(device), y.to(device)).item())
        out[name] = sum(losses) / len(losses)
    model.train()
    return out


def train(
    data_dir: str | Path,
    out: str | Path,
    preset: str = "tiny",
    resume: bool = False,
    log=print,
    **overrides: Any,
) -> TrainResult:
    """Train a GPT on the token files in ``data_dir``, writing the run folder ``out``.

    ``overrides`` are ModelConfig or TrainConfig fields (``n_layer=2``, ``max_iters=500``).
    With ``resume`` the run continues from ``out/last.pt`` with its saved configs (the
    overrides still apply, e.g. a larger ``max_iters``).
    """
    data_dir, out = Path(data_dir), Path(out)
    meta = load_meta(data_dir)
    tok = tokenizers.load(data_dir / "tokenizer.json")
    tok_json = json.dumps(tok.to_dict(), ensure_ascii=False)
    m_over, t_over = split_overrides(overrides)

    ck = None
    if resume:
        ck = checkpoint.load(out / "last.pt")
        if ck["tokenizer"] != tok_json:
            raise CheckpointError(
                f"{out}/last.pt was trained on another vocabulary than {data_dir}; "
                "resume with the data folder it was trained on"
            )
        mcfg = from_dict(ModelConfig, ck["model_config"])
        if m_over:
            raise WordGPTError(f"the model's shape cannot change on resume: {sorted(m_over)}")
        tcfg = replace(from_dict(TrainConfig, ck["train_config"]), **t_over)
    else:
        p = get_preset(preset)
        mcfg = replace(p.model, vocab_size=meta["vocab_size"], **m_over)
        tcfg = replace(p.train, **t_over)
    if mcfg.vocab_size != meta["vocab_size"]:
        raise CheckpointError("the model's vocabulary size differs from the data's")

    # --- distributed (torchrun) ---
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if ddp:
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if backend == "nccl" else torch.device("cpu")
        if backend == "nccl":
            torch.cuda.set_device(device)
    else:
        device = pick_device(tcfg.device)
    master = rank == 0
    to_stdout = log is print
    if to_stdout:  # lines appear as they come, even when piped to a file
        log = functools.partial(print, flush=True)
    say = log if master else (lambda *a, **k: None)
    dtype = autocast_dtype(tcfg, device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # --- model, optimizer, data ---
    train_data = load_split(data_dir, "train")
    splits = {"train": train_data, "val": load_split(data_dir, "val")}
    torch.manual_seed(tcfg.seed)
    emb_info = None
    if tcfg.init_embeddings and ck is None:
        from .embeddings import embedding_matrix

        matrix, emb_info = embedding_matrix(
            tcfg.init_embeddings,
            tok,
            mcfg.n_embd,
            fit=tcfg.embeddings_fit,
            limit=tcfg.embeddings_limit,
            seed=tcfg.seed,
            counts=np.bincount(np.asarray(train_data), minlength=tok.vocab_size),
            log=say,
        )
        if matrix.shape[1] != mcfg.n_embd:  # fit == "model": the width follows the vectors
            mcfg = replace(mcfg, n_embd=matrix.shape[1])
    model = GPT(mcfg)
    if emb_info is not None:
        with torch.no_grad():
            model.wte.weight.copy_(torch.from_numpy(matrix))
    model.to(device)
    fused = device.type in ("cuda", "cpu")
    opt = torch.optim.AdamW(
        param_groups(model, tcfg.weight_decay),
        lr=tcfg.lr,
        betas=(tcfg.beta1, tcfg.beta2),
        fused=fused,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    gen = torch.Generator().manual_seed(tcfg.seed + 1000 * rank)

    step, tokens, best_val, elapsed, last_val = 0, 0, float("inf"), 0.0, float("nan")
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if "scaler" in ck and scaler.is_enabled():
            scaler.load_state_dict(ck["scaler"])
        step, tokens, elapsed = ck["step"], ck["tokens"], ck["elapsed_s"]
        best_val, last_val = ck["best_val"], ck["last_val"]
        emb_info = ck.get("provenance", {}).get("embeddings")
        gen.set_state(ck["rng"]["batch"])
        torch.set_rng_state(ck["rng"]["torch"])
        if device.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"])
        say(f"resumed {out}/last.pt at step {step}")
    run_model: nn.Module = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        run_model = DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None
        )
    if tcfg.compile or (tcfg.compile is None and device.type == "cuda"):
        run_model = torch.compile(run_model)

    # --- run folder ---
    if master:
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "data_dir": str(data_dir.resolve()),
            "preset": preset,
            "data": meta["config"],
            "model": to_dict(mcfg),
            "train": to_dict(tcfg),
        }
        (out / "config.json").write_text(json.dumps(config, indent=2))
        tokenizers.save(tok, out / "tokenizer.json")
    metrics = _read_metrics(out / "metrics.csv", step) if master else []

    def save(name: str = "last.pt") -> None:
        if not master:
            return
        checkpoint.save(
            {
                "model": model.state_dict(),  # the plain module: no DDP or compile prefixes
                "optimizer": opt.state_dict(),
                **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
                "model_config": to_dict(mcfg),
                "train_config": to_dict(tcfg),
                "data_config": meta["config"],
                "data_dir": str(data_dir.resolve()),
                "step": step,
                "tokens": tokens,
                "elapsed_s": elapsed,
                "best_val": best_val,
                "last_val": last_val,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "batch": gen.get_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
                "tokenizer": tok_json,
                "provenance": {"data": meta["source"], "embeddings": emb_info},
            },
            out / name,
        )

    def evaluate_and_save() -> None:
        nonlocal best_val, last_val
        if not master:
            return
        losses = estimate_loss(model, splits, tcfg, mcfg.block_size, device, dtype)
        last_val = losses["val"]
        lr = opt.param_groups[0]["lr"]
        rate = tokens / elapsed if elapsed > 0 else 0.0
        metrics.append(
            {
                "step": step,
                "train_loss": f"{losses['train']:.5f}",
                "val_loss": f"{last_val:.5f}",
                "lr": f"{lr:.6g}",
                "tokens": tokens,
                "elapsed_s": f"{elapsed:.2f}",
            }
        )
        _write_metrics(out / "metrics.csv", metrics)
        from .plots import loss_curve

        loss_curve(out / "metrics.csv", out / "loss.png", title=f"{out.name}")
        save()
        if last_val < best_val:
            best_val = last_val
            checkpoint.copy(out / "last.pt", out / "best.pt")
        say(
            f"step {step:>6} | train {losses['train']:.4f} | val {last_val:.4f} | lr {lr:.2e} "
            f"| {rate:,.0f} tok/s | {elapsed:.0f}s"
        )

    say(
        f"model: {model.num_params():,} parameters | {mcfg.n_layer} layers, {mcfg.n_head} heads, "
        f"{mcfg.n_embd} wide, block {mcfg.block_size}, {mcfg.head} head | device {device}, "
        f"{'fp32' if dtype is None else str(dtype).removeprefix('torch.')}"
    )
    bar = None
    if master and tcfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=tcfg.max_iters,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            disable=None,
            leave=False,
        )
        say = bar.write if to_stdout else say
    if step == 0:
        evaluate_and_save()

    stopped = "max_iters"
    B, T, A = tcfg.batch_size, mcfg.block_size, tcfg.grad_accum
    with _StopFlag() as flag:
        while step < tcfg.max_iters:
            if tcfg.time_budget is not None and elapsed >= tcfg.time_budget:
                stopped = "time_budget"
                break
            t0 = time.perf_counter()
            progress = step / tcfg.max_iters
            if tcfg.time_budget:
                progress = max(progress, elapsed / tcfg.time_budget)
            lr = lr_at(step, progress, tcfg)
            for g in opt.param_groups:
                g["lr"] = lr
            for micro in range(A):
                x, y = get_batch(train_data, B, T, gen)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                sync = contextlib.nullcontext()
                if ddp and micro < A - 1:
                    sync = run_model.no_sync()
                with sync, autocast(device, dtype):
                    loss = run_model(x, y) / A
                scaler.scale(loss).backward()
            if step < tcfg.freeze_embeddings:
                model.wte.weight.grad = None  # AdamW skips a parameter without a gradient
            if tcfg.grad_clip > 0:
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens += B * T * A * world
            elapsed += time.perf_counter() - t0
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item() * A:.3f}", lr=f"{lr:.1e}", refresh=False)
            stop_now = flag.signum is not None
            if ddp:
                import torch.distributed as dist

                s = torch.tensor([float(stop_now)], device=device)
                dist.all_reduce(s)
                stop_now = bool(s.item())
            if stop_now:
                stopped = "signal"
                break
            if step % tcfg.eval_interval == 0 or step == tcfg.max_iters:
                evaluate_and_save()
        if bar is not None:
            bar.close()
        if not metrics or int(metrics[-1]["step"]) != step:
            evaluate_and_save()
    if stopped == "signal":
        say(f"stopped by signal at step {step}; saved {out}/last.pt (continue with --resume)")
    if ddp:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainResult(
        out,
        step,
        best_val,
        last_val,
        elapsed,
        tokens / elapsed if elapsed > 0 else 0.0,
        model.num_params(),
        stopped,
    )
