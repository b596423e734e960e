"""A new run that starts from another run's weights (``--init-from RUN``): pretrain on a
shelf of books, then fine-tune on the book. The model's shape comes from RUN; the new run
has its own folder, optimiser state, schedule and step count (nanoGPT's ``init_from``, never
an edit of a resumed run).

Vocabularies: when the data was prepared with RUN's own tokenizer (``prepare
--tokenizer-from``, the recommended path), the weights are RUN's exactly. When it has another
vocabulary, the rows of the token embedding and of a softmax output layer are mapped by
token string: a token both vocabularies have keeps its rows, a new one starts from the mean
of RUN's rows. An adaptive output layer groups its tokens into clusters by their frequency
in RUN's data, so its rows cannot be carried over to another order: that is refused, with
the command that gives the data RUN's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import ModelConfig
from ..corpus.tokenizer import Tokenizer
from ..errors import WordGPTError
from ..runs import checkpoint

FREE = ("vocab_size", "dropout", "attn_dropout")
"""The model settings a fine-tune may set for itself; every other one is RUN's."""
ROWS = ("wte.weight", "lm_head.weight", "lm_head.bias")
"""The weights with a row per token: mapped by token string across vocabularies."""


@dataclass
class Source:
    """The run a new run starts from: its checkpoint, config and tokenizer."""

    path: Path
    ck: dict
    cfg: ModelConfig
    tokenizer: Tokenizer
    same_vocabulary: bool

    def provenance(self) -> dict:
        """What config.json and summary.json record of where the weights came from."""
        return {
            "run": str(self.path.parent.resolve()),
            "checkpoint": str(self.path.resolve()),
            "data": self.ck.get("data_dir"),
            "step": self.ck.get("step"),
            "val_loss": self.ck.get("best_val"),
            "same_vocabulary": self.same_vocabulary,
        }


def load_source(spec: str | Path, overrides: dict, tok: Tokenizer) -> tuple[Source, ModelConfig]:
    """RUN's checkpoint (its best.pt, or the file given) and the new run's model config: RUN's
    shape, this data's vocabulary, and only the settings in FREE from ``overrides``."""
    path = checkpoint.checkpoint_path(spec, "best")
    ck = checkpoint.read(path)
    cfg = checkpoint.model_config(ck, path)
    fixed = {k: v for k, v in overrides.items() if k not in FREE and getattr(cfg, k) != v}
    if fixed:
        raise WordGPTError(
            f"--init-from takes the model's shape from {spec}: {', '.join(sorted(fixed))} "
            f"cannot change (it has {', '.join(f'{k}={getattr(cfg, k)}' for k in sorted(fixed))})"
        )
    src_tok = checkpoint.tokenizer(ck, path)
    same = checkpoint.same_vocabulary(src_tok, tok)
    if not same and cfg.head == "adaptive" and cfg.adaptive_cutoffs():
        raise WordGPTError(
            f"{spec} has an adaptive output layer, whose clusters follow its own vocabulary's "
            "frequency order, and this data has another vocabulary; prepare the data with it: "
            f"wordgpt prepare --dataset ... --tokenizer-from {spec}"
        )
    free = {k: v for k, v in overrides.items() if k in FREE}
    return Source(path, ck, cfg, src_tok, same), replace(cfg, vocab_size=tok.vocab_size, **free)


@torch.no_grad()
def init_weights(model: torch.nn.Module, src: Source, tok: Tokenizer) -> dict:
    """Give ``model`` the source run's weights: exactly, or with the rows of each token
    mapped by its string (new tokens: the mean of the source's rows). Returns what was
    mapped."""
    weights = src.ck["model"]
    if src.same_vocabulary:
        checkpoint.load_weights(model, src.ck, src.path)
        return {"shared_tokens": tok.vocab_size, "new_tokens": 0}
    old = {t: i for i, t in enumerate(src.tokenizer.token_strings())}
    new_strings = tok.token_strings()
    shared = [(i, old[t]) for i, t in enumerate(new_strings) if t in old]
    state = dict(weights)
    for name in ROWS:
        if name not in weights:
            continue
        w = weights[name]
        rows = w.mean(dim=0, keepdim=True).expand(len(new_strings), *w.shape[1:]).clone()
        if shared:
            to, frm = zip(*shared, strict=True)
            rows[list(to)] = w[list(frm)]
        state[name] = rows
    checkpoint.load_weights(model, {"model": state}, src.path)
    return {"shared_tokens": len(shared), "new_tokens": len(new_strings) - len(shared)}
