"""Training speed: tokens/s, characters/s, seconds per step (forward, backward and the
optimizer's step apart), achieved FLOP/s and model-FLOP utilisation against this machine's
measured matrix-product peak, and the speed-up over the original notebook's reference model
measured in the same run.

    python benchmarks/speed.py                 # the reference dims: 4 layers, 4 heads, 128 wide
    python benchmarks/speed.py --seed-preset   # the notebook's full size, seconds per step
    python benchmarks/speed.py --optimizer muon   # Muon's step (its Newton-Schulz) timed too
    python benchmarks/speed.py --json
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import torch
from common import chars_per_token, emit, prepared, quiet
from torch.utils.flop_counter import FlopCounterMode

from tests.reference_model import ReferenceGPT
from wordgpt.config import ModelConfig, OptimConfig
from wordgpt.corpus.tokenfiles import load_meta, load_split
from wordgpt.model.device import (
    autocast,
    autocast_dtype,
    cpu_prefers_bf16,
    dtype_name,
    native_bf16,
    step_timer,
)
from wordgpt.model.gpt import GPT
from wordgpt.presets import NOTEBOOK_MODEL, preset_configs
from wordgpt.settings import to_dict
from wordgpt.training.batches import get_rows, random_offsets
from wordgpt.training.optim import build_optimizer, param_groups

PLAIN = {**NOTEBOOK_MODEL, "dropout": 0.0}
"""The model measured, but for its dims and the options of a row: the notebook's plain model
(learned positions, full softmax, ReLU) without dropout, as the reference is (the defaults are
the cpu recipe's model)."""


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 8) -> float:
    """FLOP/s of an n x n matrix product in ``dtype`` on this CPU."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def step_flops(model, x, y) -> float:
    """FLOPs of one forward and backward pass, counted by PyTorch."""
    with FlopCounterMode(display=False) as fc:
        model(x, y).backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def bench(model, data, batch, block, dtype, steps, warmup=2, optimizer="adamw") -> dict:
    if optimizer == "adamw":
        opts = [torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=True)]
    else:  # as the trainer builds it: Muon for the blocks' matrices, AdamW for the rest
        cfg = OptimConfig(optimizer=optimizer, lr=1e-4)
        opts = list(build_optimizer(model, cfg, torch.device("cpu")).opts.values())
    gen = torch.Generator().manual_seed(0)
    fwd = bwd = step = tot = 0.0
    for i in range(warmup + steps):
        x, y = get_rows(data, random_offsets(len(data), block, batch, gen), block)
        t0 = time.perf_counter()
        with autocast(torch.device("cpu"), dtype):
            loss = model(x, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i >= warmup:
            fwd, bwd, step, tot = fwd + t1 - t0, bwd + t2 - t1, step + t3 - t2, tot + t3 - t0
    return {
        "s_per_step": tot / steps,
        "fwd_s": fwd / steps,
        "bwd_s": bwd / steps,
        "opt_s": step / steps,
        "tokens_per_s": batch * block * steps / tot,
    }


AUTO = object()
"""A dtype placeholder: whatever ``--dtype auto`` picks for the model on this machine."""


def probe(model, cfg, x, y) -> bool:
    """The trainer's probe (training.setup.choose_dtype): bf16 if measured clearly faster here."""
    shape = json.dumps(to_dict(cfg), sort_keys=True)
    B = min(len(x), 4)
    return cpu_prefers_bf16(f"{shape} batch {B}", step_timer(model, x[:B], y[:B]))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument(
        "--seed-preset",
        action="store_true",
        help="the notebook's full size (32 x 512, 32 heads), a few steps",
    )
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile")
    ap.add_argument(
        "--optimizer",
        choices=["adamw", "muon"],
        default="adamw",
        help="the optimizer stepped (muon: as the trainer builds it, Muon and AdamW)",
    )
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


def model_shape(args: argparse.Namespace) -> dict:
    """The dims measured: the flags', or the seed preset's own (its dropout 0.2 included)."""
    if not args.seed_preset:
        return dict(
            n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=args.block
        )
    s, _ = preset_configs("seed")
    args.steps = min(args.steps, 3)
    return dict(
        n_layer=s.n_layer,
        n_head=s.n_head,
        n_embd=s.n_embd,
        block_size=s.block_size,
        dropout=s.dropout,
    )


def configurations(args: argparse.Namespace) -> list[tuple]:
    """(name, implementation, tokenizer, dtype, model options); AUTO: what --dtype auto picks."""
    bf16, ad = torch.bfloat16, {"head": "adaptive"}
    configs = [
        ("reference (notebook)", "reference", "word", None, {}),
        ("wordgpt fp32", "wordgpt", "word", None, {}),
        ("wordgpt bf16", "wordgpt", "word", bf16, {}),
        ("wordgpt auto", "wordgpt", "word", AUTO, {}),
        ("wordgpt auto, adaptive", "wordgpt", "word", AUTO, ad),
        ("wordgpt auto, adaptive, space-prefix words", "wordgpt", "word-sp", AUTO, ad),
    ]
    if args.seed_preset:
        drop = preset_configs("seed")[0].dropout
        attn = ("wordgpt auto, adaptive, attention dropout 0.2 too", "wordgpt", "word", AUTO,
                {**ad, "attn_dropout": drop})  # fmt: skip
        shipped = ("wordgpt auto (--preset seed as shipped)", *configs[3][1:])
        configs = [configs[0], configs[1], configs[2], shipped, configs[4], attn, configs[5]]
    if args.compile:
        configs.append(("wordgpt auto, adaptive, space-prefix, compiled", "compiled", "word-sp",
                        AUTO, ad))  # fmt: skip
    return configs


def measure(config: tuple, shape: dict, args, peaks: dict) -> dict:
    """One configuration's row: speed, FLOP/s and MFU against the peak of its dtype."""
    name, impl, tokname, dtype, opts = config
    d = prepared(tokname)
    data = load_split(d, "train")
    cfg = ModelConfig(vocab_size=load_meta(d)["vocab_size"], **{**PLAIN, **shape, **opts})
    model = ReferenceGPT(cfg) if impl == "reference" else GPT(cfg)
    x, y = get_rows(
        data, random_offsets(len(data), args.block, args.batch, torch.Generator()), args.block
    )
    if dtype is AUTO:  # the trainer's own choice: a measured probe, cached per machine
        dtype = autocast_dtype(
            "auto", torch.device("cpu"), functools.partial(probe, model, cfg, x, y)
        )
    flops = step_flops(model, x, y)
    extra = {}
    if impl == "compiled":
        model = torch.compile(model)
        t = time.perf_counter()
        bench(model, data, args.batch, args.block, dtype, 1, warmup=1)
        extra["compile_s"] = time.perf_counter() - t
    r = bench(model, data, args.batch, args.block, dtype, args.steps, optimizer=args.optimizer)
    cpt = chars_per_token(d)
    return {
        **r,
        **extra,
        "config": name,
        "tokenizer": tokname,
        "dtype": dtype_name(dtype) + (" (auto)" if "auto" in name else ""),
        "params": sum(p.numel() for p in model.parameters()),
        "chars_per_s": r["tokens_per_s"] * cpt,
        "chars_per_token": cpt,
        "gflop_per_s": flops / r["s_per_step"] / 1e9,
        "mfu": flops / r["s_per_step"] / peaks[dtype],
    }


COLUMNS = [
    ("config", "configuration", "s"),
    ("dtype", "dtype", "s"),
    ("tokens_per_s", "tokens/s", ",.0f"),
    ("chars_per_s", "chars/s", ",.0f"),
    ("speedup", "x reference", ".2f"),
    ("s_per_step", "s/step", ".3f"),
    ("fwd_s", "fwd s", ".3f"),
    ("bwd_s", "bwd s", ".3f"),
    ("opt_s", "optimizer s", ".3f"),
    ("gflop_per_s", "GFLOP/s", ".1f"),
    ("mfu", "MFU", ".1%"),
]


def main() -> None:
    args = parse_args()
    quiet()
    torch.manual_seed(0)
    # bf16 only where the CPU has it (AVX-512 bf16, AMX): without, it is emulated at about a
    # hundredth of fp32's speed, and measuring it would take minutes for nothing
    bf16 = native_bf16()
    peaks = {None: matmul_peak(torch.float32)}
    if bf16:
        peaks[torch.bfloat16] = matmul_peak(torch.bfloat16)
    elif not args.json:
        print("  bf16: not measured (this CPU has no native bf16; --dtype auto takes fp32)")
    shape = model_shape(args)
    rows, ref_cps = [], None
    for config in configurations(args):
        if config[3] is torch.bfloat16 and not bf16:
            continue
        r = measure(config, shape, args, peaks)
        if config[1] == "reference":
            ref_cps = r["chars_per_s"]
        r["reference_chars_per_s"] = ref_cps
        r["speedup"] = r["chars_per_s"] / ref_cps
        rows.append(r)
        if not args.json:
            print(f"  measured {r['config']}: {r['tokens_per_s']:,.0f} tok/s", flush=True)
    extra = {
        "peak fp32 GFLOP/s": round(peaks[None] / 1e9, 1),
        "peak bf16 GFLOP/s": (
            round(peaks[torch.bfloat16] / 1e9, 1) if bf16 else "not measured (no native bf16)"
        ),
        "threads": torch.get_num_threads(),
        "shape": shape,
        "batch": args.batch,
        "optimizer": args.optimizer,
    }
    emit(rows, COLUMNS, args.json, extra)


if __name__ == "__main__":
    main()
