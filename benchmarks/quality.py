"""Quality per minute: train for a fixed wall-clock budget on Don Quixote, then measure
val bits per character over the whole validation split, for each tokenizer and recipe,
with several seeds and their spread.

    python benchmarks/quality.py                                  # cpu preset, word-sp, 300 s
    python benchmarks/quality.py --tokenizers word-sp char bpe --seeds 1
    python benchmarks/quality.py --recipe seed-dims --budget 300  # the issue's reference dims
    python benchmarks/quality.py --init random word2vec pretrained --budget 120 --seeds 1 2

``--init`` compares embedding initialisations of the same model: ``random``; ``word2vec``
trained here on the training split only (never on validation text); ``pretrained`` from a
vector file (``--vectors``, default the small word2vec file that ships with gensim).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import gensim
from common import ROOT, emit, prepared

import wordgpt
from wordgpt.config import Word2VecConfig
from wordgpt.embeddings import save_vectors, train_word2vec

RECIPES = {
    # the cpu preset as shipped
    "cpu": {},
    # the reference dims (4 x 128, block 128, batch 16) with wordgpt's recipe
    "seed-dims": {"n_layer": 4, "n_head": 4, "n_embd": 128, "batch_size": 16},
    # the same dims, the notebook's plain architecture and optimiser settings
    "plain": {
        "n_layer": 4,
        "n_head": 4,
        "n_embd": 128,
        "batch_size": 16,
        "pos": "learned",
        "head": "softmax",
        "dropout": 0.2,
        "lr": 3e-4,
        "min_lr_ratio": 1.0,
        "warmup_iters": 0,
    },
}
GENSIM_VECTORS = Path(gensim.__file__).parent / "test" / "test_data" / "word2vec_pre_kv_c"


def run_one(data_dir: Path, out: Path, budget: float, seed: int, overrides: dict) -> dict:
    r = wordgpt.train(
        data_dir,
        out,
        preset="cpu",
        time_budget=budget,
        seed=seed,
        progress=False,
        log=lambda *a: None,
        **overrides,
    )
    e = wordgpt.load(out, "last").evaluate("val")
    return {
        "steps": r.step,
        "tokens_per_s": r.tokens_per_s,
        "train_s": r.elapsed_s,
        "val_bpc": e.bits_per_char,
        "val_loss": e.loss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of training per run")
    ap.add_argument(
        "--tokenizers", nargs="+", default=["word-sp"], choices=["word", "word-sp", "char", "bpe"]
    )
    ap.add_argument("--recipe", nargs="+", default=["cpu"], choices=sorted(RECIPES))
    ap.add_argument(
        "--init", nargs="+", default=["random"], choices=["random", "word2vec", "pretrained"]
    )
    ap.add_argument("--vectors", type=Path, default=GENSIM_VECTORS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="wordgpt-quality-"))
    rows = []
    for tokname in args.tokenizers:
        data_dir = prepared(tokname)
        vectors = {"random": None, "pretrained": str(args.vectors)}
        if "word2vec" in args.init:
            path = ROOT / "data" / f"bench-w2v-{tokname}.kv"
            if not path.exists():
                kv = train_word2vec(data_dir, Word2VecConfig(split="train", seed=1))
                save_vectors(kv, path)
            vectors["word2vec"] = str(path)
        for recipe in args.recipe:
            for init in args.init:
                results = []
                for seed in args.seeds:
                    over = dict(RECIPES[recipe])
                    if vectors[init]:
                        over["init_embeddings"] = vectors[init]
                    out = root / f"{tokname}-{recipe}-{init}-{seed}"
                    res = run_one(data_dir, out, args.budget, seed, over)
                    results.append(res)
                    if not args.json:
                        print(
                            f"  {tokname} {recipe} {init} seed {seed}: "
                            f"{res['val_bpc']:.4f} bpc, {res['steps']} steps, "
                            f"{res['tokens_per_s']:,.0f} tok/s",
                            flush=True,
                        )
                bpcs = [r["val_bpc"] for r in results]
                rows.append(
                    {
                        "tokenizer": tokname,
                        "recipe": recipe,
                        "init": init,
                        "seeds": len(bpcs),
                        "val_bpc": statistics.mean(bpcs),
                        "spread": (max(bpcs) - min(bpcs)) / 2 if len(bpcs) > 1 else None,
                        "tokens_per_s": statistics.mean(r["tokens_per_s"] for r in results),
                        "steps": statistics.mean(r["steps"] for r in results),
                        "runs": results,
                    }
                )
    emit(
        rows,
        [
            ("tokenizer", "tokens", "s"),
            ("recipe", "recipe", "s"),
            ("init", "init", "s"),
            ("seeds", "seeds", "d"),
            ("val_bpc", "val bits/char", ".4f"),
            ("spread", "± (half range)", ".4f"),
            ("tokens_per_s", "tokens/s", ",.0f"),
            ("steps", "steps", ",.0f"),
        ],
        args.json,
        {"budget_s": args.budget, "runs in": str(root)},
    )


if __name__ == "__main__":
    main()
