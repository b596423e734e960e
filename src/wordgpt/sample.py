"""Sampling: plain seeded functions, and a trained run loaded for generation and evaluation.

``temperature == 0`` means greedy (argmax); ``top_k`` keeps exactly the k most likely
tokens; ``top_p`` keeps the smallest set of tokens whose probability reaches p.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from . import checkpoint, tokenizers
from .config import ModelConfig, SampleConfig, from_dict
from .errors import CheckpointError
from .evaluate import EvalResult, evaluate
from .model import GPT


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one id per row from last-position logits (B, V); returns (B,)."""
    logits = logits.float()
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        v, i = torch.topk(logits, top_k, dim=-1)  # exactly k, even with ties
        logits = torch.full_like(logits, float("-inf")).scatter(1, i, v)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token is enough
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def default_context(tok: tokenizers.Tokenizer) -> list[int]:
    """Where generation starts with no prompt: just after a full stop, so that the model
    begins a sentence (not at id 0, which is ``<unk>``)."""
    ids = tok.encode(".")
    return ids if ids and 0 not in ids else [1]


@dataclass
class Model:
    """A trained run, ready to generate text and to be evaluated (what :func:`load` returns)."""

    gpt: GPT
    tokenizer: tokenizers.Tokenizer
    run_dir: Path
    config: dict
    step: int
    device: torch.device

    def encode_prompt(self, prompt: str) -> tuple[list[int], Counter[str]]:
        """Ids of ``prompt`` and the tokens that were not in the vocabulary (now ``<unk>``)."""
        return self.tokenizer.encode(prompt), self.tokenizer.unknown(prompt)

    def stream(self, prompt: str = "", cfg: SampleConfig | None = None, **kw) -> Iterator[str]:
        """Yield the generated text piece by piece (the prompt is not repeated)."""
        cfg = replace(cfg or SampleConfig(), **kw)
        ids = self.tokenizer.encode(prompt) if prompt else default_context(self.tokenizer)
        if not ids:
            ids = default_context(self.tokenizer)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(cfg.seed if cfg.seed is not None else torch.seed())
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)

        def sample(logits):
            return sample_next(logits, cfg.temperature, cfg.top_k, cfg.top_p, gen)

        new: list[int] = []
        shown = 0
        self.gpt.eval()
        for nxt in self.gpt.generate(idx, cfg.max_new_tokens, sample, cfg.use_cache):
            new.append(int(nxt[0]))
            text = self.tokenizer.decode(new)
            if text.endswith("\ufffd"):  # a byte-level token that ends mid-character
                continue
            if not prompt:  # no leading space before the first word
                text = text.lstrip()
            if len(text) > shown:
                yield text[shown:]
                shown = len(text)

    def generate(self, prompt: str = "", cfg: SampleConfig | None = None, **kw) -> str:
        """The generated continuation of ``prompt`` as one string."""
        return "".join(self.stream(prompt, cfg, **kw))

    def evaluate(
        self, split: str = "val", data_dir: str | Path | None = None, batch_size: int = 16
    ) -> EvalResult:
        """Loss, perplexity and bits per character over the whole ``split``."""
        from .data import load_meta, load_split

        data_dir = Path(data_dir or self.config["data_dir"])
        meta = load_meta(data_dir)
        tok_json = json.dumps(tokenizers.load(data_dir / "tokenizer.json").to_dict())
        if tok_json != json.dumps(self.tokenizer.to_dict()):
            raise CheckpointError(
                f"{data_dir} was tokenized with another vocabulary than run {self.run_dir}"
            )
        data = load_split(data_dir, split)
        return evaluate(
            self.gpt,
            data,
            meta["splits"][split]["chars"],
            self.gpt.cfg.block_size,
            split,
            batch_size,
            self.device,
        )


def load(run_dir: str | Path, which: str = "best", device: str = "auto") -> Model:
    """Load a run folder's ``best.pt`` (or ``last.pt``, or a checkpoint path) for use."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        path, run_dir = run_dir, run_dir.parent
    else:
        if not run_dir.is_dir():
            raise CheckpointError(f"no run folder at {run_dir}")
        path = run_dir / f"{which}.pt"
        if not path.exists() and which == "best":
            path = run_dir / "last.pt"
    ck = checkpoint.load(path)
    dev = pick_device(device)
    cfg = from_dict(ModelConfig, ck["model_config"])
    gpt = GPT(cfg)
    try:
        gpt.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit its own config: {str(e)[:200]}") from None
    gpt.to(dev).eval()
    tok = tokenizers.from_dict(json.loads(ck["tokenizer"]))
    if tok.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer and model disagree on the vocabulary size")
    config = {
        "data_dir": ck.get("data_dir", ""),
        "model": ck["model_config"],
        "train": ck.get("train_config", {}),
    }
    return Model(gpt, tok, run_dir, config, int(ck.get("step", 0)), dev)


def print_stream(pieces: Iterator[str], out=sys.stdout) -> str:
    """Write pieces as they come; return the whole text."""
    parts = []
    for p in pieces:
        out.write(p)
        out.flush()
        parts.append(p)
    out.write("\n")
    return "".join(parts)
