"""Generation speed: new tokens per second with and without the KV cache.

python benchmarks/generate.py [--new-tokens 1000] [--json]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import emit

from wordgpt.config import ModelConfig
from wordgpt.model.gpt import GPT
from wordgpt.model.sampling import sample_next


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=1000)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=14_627)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    shapes = {
        "4 x 128 (the issue's dims)": dict(n_layer=4, n_head=4, n_embd=128),
        "4 x 256 (cpu preset)": dict(n_layer=4, n_head=4, n_embd=256, pos="rope", head="adaptive"),
    }
    for name, shape in shapes.items():
        torch.manual_seed(0)
        model = GPT(ModelConfig(vocab_size=args.vocab, block_size=args.block, **shape)).eval()
        idx = torch.zeros(1, 1, dtype=torch.long)
        out = {}
        for cache in (False, True):
            g = torch.Generator().manual_seed(0)

            def sample(logits, g=g):
                return sample_next(logits, 1.0, top_k=50, generator=g)

            t = time.perf_counter()
            n = sum(1 for _ in model.generate(idx, args.new_tokens, sample, use_cache=cache))
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
