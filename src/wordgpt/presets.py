"""The recipes, as one table: each preset is a set of changes to the defaults (or to another
preset), with what it is for and the measurement behind it.

The defaults of :mod:`wordgpt.config` are the recommended recipe for word tokens (the ``cpu``
preset). ``train`` without ``--preset`` takes the row of :data:`RECIPES` for its tokens and
its time budget, scaled by this machine's measured speed (``training/speed.py``). Every figure
is validation bits per character of Don Quixote (seed 1, the whole val split) from
``benchmarks/quality.py`` on a 2-core CPU; ``benchmarks/RESULTS.md`` has the tables. Step
counts there were turned into fractions of the run (warm-up, Muon's momentum ramp), so that a
recipe measured on one machine means the same on a slower one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ModelConfig, TrainConfig, Word2VecConfig
from .errors import WordGPTError
from .settings import with_settings


@dataclass(frozen=True)
class Preset:
    """A named recipe: changes to ``base`` (a preset, or the defaults), by field name."""

    about: str
    """What it is for, and what it measured."""
    base: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields and those of its parts (optimiser, stopping, evaluation)."""


NOTEBOOK_MODEL = {
    "pos": "learned",
    "head": "softmax",
    "mlp": "relu",
    "qk_norm": False,
    "zero_init_proj": False,
    "value_residual": False,
    "attn_dropout": 0.0,
}
"""The toggles that turn the recommended model back into the original notebook's plain one
(``tests/reference_model.py`` is that model written the notebook's way)."""

PRESETS: dict[str, Preset] = {
    # The defaults: rotary positions, the adaptive head, ReLU², QK-norm, zero-initialised
    # projections, the value residual, AdamW at 2e-3 with a WSD schedule, at most 4 passes.
    # 300 s: 1.5591 bits/char (the nanoGPT-style baseline 1.6002); more passes overfit a book.
    "cpu": Preset("the recommended recipe for word tokens: 300 s on a 2-core CPU, at most 4 "
                  "passes over the text (more overfits a book)"),
    # In 60 s two layers at lr 3e-3 take more steps and win: 1.6457 (4 layers: 1.7086).
    "word-60": Preset("word tokens, 60 s: the cpu recipe with 2 layers and lr 3e-3",
                      base="cpu", model={"n_layer": 2},
                      train={"time_budget": 60.0, "lr": 3e-3, "warmup": 0.33}),
    # The 4-pass cap ends these runs before the budget: 1.5579 in 900 s (1.5591 in 300 s).
    "word-900": Preset("word tokens, 900 s: the cpu recipe, decaying at the first plateau",
                       base="cpu", train={"time_budget": 900.0, "decay_on_plateau": 3}),
    "word-3600": Preset("word tokens, 3600 s: the cpu recipe, decaying at the first plateau",
                        base="cpu", train={"time_budget": 3600.0, "decay_on_plateau": 3}),
    # Characters want a longer context and the full softmax; Muon for the blocks' matrices;
    # no dropout (with 0.1: 1.8725). 300 s: 1.7893 (the baseline 1.8803).
    "char": Preset("the recipe for character tokens: a 256-character context, full softmax, "
                   "no dropout, Muon for the blocks' matrices",
                   base="cpu",
                   model={"block_size": 256, "head": "softmax", "dropout": 0.0,
                          "attn_dropout": 0.0},
                   train={"batch_size": 16, "optimizer": "muon", "muon_lr": 1e-2,
                          "warmup": 0.08, "muon_warmup": 0.05, "epochs": None, "ngram": 0}),
    # 60 s: a 128-character context and batch 32 take more steps: 2.1743 (char: 2.2298).
    "char-60": Preset("characters, 60 s: the char recipe with a 128-character context, batch 32",
                      base="char", model={"block_size": 128},
                      train={"time_budget": 60.0, "batch_size": 32, "warmup": 0.4,
                             "muon_warmup": 0.24}),
    # 900 s: 1.6661 (3.8 passes; the plateau never came).
    "char-900": Preset("characters, 900 s: the char recipe, decaying at the first plateau",
                       base="char", train={"time_budget": 900.0, "decay_on_plateau": 3,
                                           "warmup": 0.03, "muon_warmup": 0.02}),
    # 3600 s: stopped at 4 passes after 1,003 s: 1.6634.
    "char-3600": Preset("characters, 3600 s: the char recipe for at most 4 passes, decaying "
                        "at the first plateau",
                        base="char", train={"time_budget": 3600.0, "decay_on_plateau": 3,
                                            "epochs": 4.0, "warmup": 0.03,
                                            "muon_warmup": 0.02}),
    # A model pretrained on the shelf of novels, fine-tuned on Don Quixote for 300 s: 1.4730
    # (the same model from the book alone: 1.6449; both at --min-count 1).
    "finetune": Preset("for --init-from: a pretrained model fine-tuned on a book (lr 5e-4, "
                       "WSD decaying at the first plateau of the val loss, 300 s)",
                       base="cpu", train={"lr": 5e-4, "warmup": 0.06, "decay_on_plateau": 3}),
    # The original notebook: 32 layers x 512 wide, 32 heads, constant lr 3e-4, AdamW with
    # beta2 0.999; its dropout 0.2 (add --attn-dropout 0.2 for its dropout on attention
    # weights too). A GPU's recipe: 5,000 steps.
    "seed": Preset("the original notebook's model: 32 layers x 512 wide, 32 heads, constant lr "
                   "3e-4, 5,000 steps (a GPU's job)",
                   model={**NOTEBOOK_MODEL, "n_layer": 32, "n_head": 32, "n_embd": 512,
                          "dropout": 0.2},
                   train={"batch_size": 16, "lr": 3e-4, "warmup": 0.0, "min_lr_ratio": 1.0,
                          "decay": "cosine", "weight_decay": 0.01, "beta2": 0.999,
                          "max_iters": 5000, "time_budget": None, "epochs": None,
                          "eval_interval": 100, "eval_iters": 20, "ngram": 0}),
    # For tests: seconds on a CPU.
    "tiny": Preset("for tests: seconds on a CPU",
                   model={**NOTEBOOK_MODEL, "n_layer": 2, "n_head": 2, "n_embd": 32,
                          "block_size": 32, "dropout": 0.0},
                   train={"batch_size": 8, "lr": 3e-3, "warmup": 0.05, "decay": "cosine",
                          "max_iters": 200, "time_budget": None, "epochs": None, "ngram": 0}),
}  # fmt: skip

NOTEBOOK_WORD2VEC = Word2VecConfig(
    vector_size=500, window=5, min_count=1, sg=1, epochs=5, negative=5, sample=1e-3, alpha=0.025
)
"""The original notebook's Word2Vec: ``Word2Vec(sentences, min_count=1, sg=1, vector_size=500)``
with gensim's defaults for the rest (5 epochs, window 5, 5 negative samples)."""

RECIPES: dict[tuple[str, int], str] = {
    ("word", 60): "word-60",
    ("word", 300): "cpu",
    ("word", 900): "word-900",
    ("word", 3600): "word-3600",
    ("char", 60): "char-60",
    ("char", 300): "char",
    ("char", 900): "char-900",
    ("char", 3600): "char-3600",
}
"""The preset measured best at each budget (seconds on the machine of PROBE), by tokens;
BPE takes the word rows (``benchmarks/quality.py --budgets 60 300 900 3600``)."""

PROBE = {
    "model": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 128, "head": "adaptive"},
    "vocab_size": 16_384,
    "batch_size": 8,
    "tokens_per_s": 5_400.0,  # median of 5 probes on a quiet machine (4,877-5,514)
}
"""The speed probe: a forward and backward pass of this model (whatever the data: it
measures the machine), and the tokens per second it ran at on the machine the recipes were
measured on (2 cores, AMD EPYC, torch 2.13)."""


def preset_configs(name: str) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a preset: its base's, with its changes."""
    if name not in PRESETS:
        raise WordGPTError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    p = PRESETS[name]
    model, train = preset_configs(p.base) if p.base else (ModelConfig(), TrainConfig())
    return with_settings(model, train, {**p.model, **p.train})
