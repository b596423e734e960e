"""Generation speed: new tokens per second with and without the KV cache; with
``--first-word RUN``, how long ``wordgpt sample RUN`` takes from its start to its first
generated word, to its last, and to its copies line (three runs, the median).

python benchmarks/generate.py [--new-tokens 1000] [--json]
python benchmarks/generate.py --first-word runs/don-quixote-demo
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import torch
from common import emit

from wordgpt.config import ModelConfig, SampleConfig
from wordgpt.model.gpt import GPT
from wordgpt.model.sampling import generate_ids
from wordgpt.presets import NOTEBOOK_MODEL, preset_configs

PROMPT = "the knight"


def first_word(run: str, tokens: int) -> dict:
    """Seconds from starting ``wordgpt sample`` to the first byte after the prompt's echo,
    to the end of the text, and to the process's exit (after the copies line)."""
    cmd = [sys.executable, "-m", "wordgpt.cli", "sample", run, "--prompt", PROMPT,
           "--max-new-tokens", str(tokens), "--seed", "1"]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen, first = b"", None
    while chunk := p.stdout.read1(4096):
        seen += chunk
        if first is None and len(seen) > len(PROMPT):
            first = time.perf_counter() - t0
    text_end = time.perf_counter() - t0
    p.wait()
    return {"first_word_s": first, "text_s": text_end, "exit_s": time.perf_counter() - t0}


def first_word_rows(run: str, tokens: int, as_json: bool) -> None:
    runs = [first_word(run, tokens) for _ in range(3)]
    row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    emit([{"run": run, "tokens": tokens, **row}],
         [("run", "run", "s"), ("tokens", "new tokens", "d"),
          ("first_word_s", "to the first word s", ".2f"), ("text_s", "to the last word s", ".2f"),
          ("exit_s", "to exit (copies found) s", ".2f")], as_json)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=1000)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=14_627)
    ap.add_argument("--first-word", metavar="RUN", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.first_word:
        return first_word_rows(args.first_word, 60, args.json)
    rows = []
    plain = ModelConfig(n_layer=4, n_head=4, n_embd=128, **NOTEBOOK_MODEL)
    shapes = {  # the notebook's plain model at the reference dims, and the cpu preset's model
        "4 x 128 (the reference dims)": plain,
        "4 x 256 (cpu preset)": preset_configs("cpu")[0],
    }
    for name, shape in shapes.items():
        torch.manual_seed(0)
        model = GPT(replace(shape, vocab_size=args.vocab, block_size=args.block)).eval()
        out = {}
        for cache in (False, True):
            # wordgpt's generation loop from one start token (id 0): temperature 1, top-k 50
            cfg = SampleConfig(max_new_tokens=args.new_tokens, temperature=1.0, top_k=50,
                               seed=0, use_cache=cache)  # fmt: skip
            t = time.perf_counter()
            n = sum(1 for _ in generate_ids(model, [0], cfg))
            out[cache] = n / (time.perf_counter() - t)
        rows.append(
            {
                "model": name,
                "no_cache_tok_s": out[False],
                "cache_tok_s": out[True],
                "speedup": out[True] / out[False],
            }
        )
    emit(
        rows,
        [
            ("model", "model", "s"),
            ("no_cache_tok_s", "tokens/s, no cache", ",.0f"),
            ("cache_tok_s", "tokens/s, KV cache", ",.0f"),
            ("speedup", "speed-up", ".1f"),
        ],
        args.json,
        {"new tokens": args.new_tokens, "block": args.block},
    )


if __name__ == "__main__":
    main()
