"""The configuration dataclasses: the one source of truth for every setting.

Each field has a docstring (the string under it) that the CLI shows as the flag's help, a type
that the CLI turns into the flag's type (``Literal`` values become choices), and a default
written once, here. Values are checked in ``__post_init__`` (:mod:`wordgpt.fields`);
combinations that cannot work are refused with one line. Presets are plain instances of
these (:mod:`wordgpt.presets`); settings by flat name are :mod:`wordgpt.settings`.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Literal

from .errors import WordGPTError
from .fields import at_least, check, check_choices, check_numbers, in_unit

MAX_TEMPERATURE = 100.0
"""The highest sampling temperature: above it every choice is as good as uniform, and a
temperature past float32's range would turn banned logits into NaN."""
MODEL_BOUNDS = {"n_layer": 1024, "n_head": 1024, "n_embd": 1 << 16, "block_size": 1 << 20}
"""The largest shapes accepted, from a flag or from a checkpoint's config alike (a config
asking for 10^7 layers would never finish building)."""


@dataclass(frozen=True)
class DataConfig:
    """How raw text becomes token files."""

    dataset: tuple[str, ...] = ("don-quixote",)
    """A named data set (don-quixote, wikipedia-sample), or paths: files (.txt, .bz2, .gz,
    MediaWiki dumps), folders of them, or glob patterns; several are read one after another."""
    tokenizer: Literal["word", "char", "bpe"] = "word"
    """word (words, punctuation and whitespace), char, or bpe (byte-level)."""
    space_prefix: bool = True
    """Word tokens carry the space before them (' the'): half as many tokens, and the
    model sees twice the text in its context (every recipe was measured with it)."""
    lowercase: bool = True
    """Lowercase the text, as the original notebook does."""
    newlines_to_spaces: bool = True
    """Replace line breaks by spaces, as the original notebook does."""
    collapse_spaces: bool = True
    """Collapse runs of spaces into one."""
    marks: bool = True
    """With capitals or line breaks kept, write a capitalised word (or one in capitals) as the
    word in lowercase and a mark, and a line break inside the text as a space and a mark after
    the next word, so that raw text keeps a lowercase text's vocabulary (bits counted)."""
    strip_gutenberg: bool = True
    """Cut a Project Gutenberg header and footer at their *** START OF / *** END OF lines."""
    skip_front_matter: bool = True
    """Named books start at their first chapter (found by its words, never by an offset)."""
    encoding: str = "utf-8"
    """Encoding of plain text files (a UTF-8 or UTF-16 byte-order mark is always honoured)."""
    val_fraction: float = 0.1
    """The share held out for validation: the last fraction of each plain file (contiguous,
    cut at whitespace), or, for Wikipedia dumps, every k-th article (k = round(1 /
    val_fraction))."""
    vocab_size: int = 4096
    """BPE only: the size of the trained vocabulary."""
    min_count: int = 2
    """Word/char only: training tokens seen fewer times than this become <unk>, so that the
    model learns how often a token outside its vocabulary comes (1 keeps every token, and
    the training text then decodes back exactly)."""
    max_vocab: int | None = None
    """Word/char only: keep at most this many tokens (the most frequent), plus <unk>."""

    def __post_init__(self) -> None:
        # one name or path given as a string is a data set of one (never its characters)
        names = (self.dataset,) if isinstance(self.dataset, str) else tuple(self.dataset)
        object.__setattr__(self, "dataset", names)
        check_choices(self)
        check_numbers(self)
        check(
            0.0 < self.val_fraction < 0.5,
            f"val_fraction must be in (0, 0.5), got {self.val_fraction}",
        )
        if self.tokenizer == "bpe":
            check(
                257 <= self.vocab_size <= 1 << 20,
                f"a byte-level BPE needs 257 <= vocab_size <= {1 << 20}, got {self.vocab_size}",
            )
        at_least(self, 1, "min_count")
        at_least(self, 2, "max_vocab")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise WordGPTError(f"unknown encoding {self.encoding!r}") from None


@dataclass(frozen=True)
class ModelConfig:
    """The GPT's shape. The defaults are the recommended recipe (the ``cpu`` preset); the
    ``seed`` preset is the original notebook's model (learned positions, ReLU, full softmax,
    32 layers)."""

    vocab_size: int = 0
    """Number of token ids; set from the tokenizer."""
    block_size: int = 128
    """Longest context the model sees."""
    n_layer: int = 4
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide n_embd."""
    n_embd: int = 256
    """Width of the residual stream."""
    dropout: float = 0.1
    """Dropout on the embedding sum and on each residual branch's output."""
    attn_dropout: float = 0.1
    """Dropout on the attention weights (on a CPU any value above 0 leaves the fused attention
    kernel for a slower one; the notebook used 0.2)."""
    norm: Literal["pre", "post"] = "pre"
    """pre: x + f(LN(x)) (the original notebook's); post: LN(x + f(x)) (the transformer paper)."""
    bias: bool = True
    """Biases in the blocks' Linear layers and LayerNorms."""
    head_bias: bool = True
    """A bias on the softmax output layer (the notebook's nn.Linear has one; GPT-2 has none)."""
    tie_weights: bool = False
    """Share the token embedding with the output layer (softmax head only)."""
    pos: Literal["learned", "rope"] = "rope"
    """Position information: learned absolute embeddings, or rope (rotary)."""
    head: Literal["softmax", "adaptive"] = "adaptive"
    """Output layer: softmax (full) or adaptive (Grave et al. 2017; exact, cheaper)."""
    cutoffs: tuple[int, ...] = (2000, 8000)
    """Adaptive head only: cluster boundaries in frequency-ordered ids; with none below the
    vocabulary size there are no clusters and the head is the full softmax."""
    mlp: Literal["relu", "relu2"] = "relu2"
    """Feed-forward activation: relu (the notebook's) or relu2, ReLU squared (Primer)."""
    qk_norm: bool = True
    """Normalise each head's queries and keys (RMS norm) before attention."""
    zero_init_proj: bool = True
    """Start the residual projections (attn.proj, mlp.proj) at zero: each block starts as the
    identity."""
    logit_softcap: float | None = None
    """Softmax head only: squash the logits into (-cap, cap) with cap * tanh(logits / cap)."""
    value_residual: bool = True
    """Mix each layer's attention values with the first layer's, by a learned weight."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(int(c) for c in self.cutoffs))
        check_choices(self)
        check_numbers(self)
        at_least(self, 1, "block_size", "n_layer", "n_head", "n_embd")
        for name, most in MODEL_BOUNDS.items():
            check(getattr(self, name) <= most, f"{name} must be at most {most:,}")
        check(
            self.n_embd % self.n_head == 0,
            f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})",
        )
        check(
            self.pos != "rope" or (self.n_embd // self.n_head) % 2 == 0,
            "rope needs an even head size (n_embd / n_head)",
        )
        in_unit(self, "dropout")
        in_unit(self, "attn_dropout")
        check(
            not (self.tie_weights and self.head == "adaptive" and self.adaptive_cutoffs()),
            "tie_weights works with the softmax head only (the adaptive head has its own "
            "cluster matrices); drop --tie-weights or use --head softmax",
        )
        check(all(c > 0 for c in self.cutoffs), f"cutoffs must be positive, got {self.cutoffs}")
        check(
            self.logit_softcap is None or self.logit_softcap > 0,
            f"logit_softcap must be > 0, got {self.logit_softcap}",
        )
        check(
            self.logit_softcap is None or not (self.head == "adaptive" and self.adaptive_cutoffs()),
            "logit_softcap works with the softmax head only (the adaptive head normalises its "
            "own clusters); drop --logit-softcap or use --head softmax",
        )
        check(list(self.cutoffs) == sorted(set(self.cutoffs)), "cutoffs must be increasing")

    def adaptive_cutoffs(self) -> list[int]:
        """Cutoffs that fit this vocabulary (those >= vocab_size are dropped)."""
        return [c for c in self.cutoffs if 0 < c < self.vocab_size]


@dataclass(frozen=True)
class OptimConfig:
    """The optimisers and the learning-rate schedule. Warm-up and decay are fractions of the
    run (of its steps, seconds or passes, whichever ends it first), so that a recipe means
    the same on a machine twice as slow."""

    optimizer: Literal["adamw", "muon"] = "adamw"
    """adamw for everything, or muon for the blocks' matrices (AdamW for the rest)."""
    lr: float = 2e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """The floor of the decay, as a fraction of lr (1.0 gives a constant rate)."""
    warmup: float = 0.12
    """The linear warm-up, as a fraction of the run."""
    decay: Literal["cosine", "wsd"] = "wsd"
    """cosine from the end of warm-up, or wsd: stable, then linear decay over the last
    decay_frac of the run."""
    decay_frac: float = 0.4
    """wsd only: fraction of the run spent decaying."""
    decay_on_plateau: int | None = None
    """wsd only: branch the decay off as soon as the val loss has not improved for this many
    evaluations; it then lasts decay_frac of the run so far (as if it had been planned that
    long), and the run ends when it is done (best.pt is taken after it). Unset: the decay
    starts at 1 - decay_frac of the run."""
    weight_decay: float = 0.1
    """Weight decay on the Linear layers' matrices (blocks and output layer); none on
    embeddings, biases or norms."""
    muon_lr: float | None = None
    """Muon's peak learning rate (its updates are scaled to AdamW's size); unset: lr."""
    muon_momentum: float = 0.95
    """Muon's momentum after its warm-up."""
    muon_warmup: float = 0.1
    """The fraction of the run over which Muon's momentum rises linearly from 0.85 to
    muon_momentum."""
    embed_lr_scale: float = 1.0
    """The embeddings' learning rate as a multiple of lr."""
    head_lr_scale: float = 1.0
    """The output layer's learning rate as a multiple of lr."""
    ema: float | None = None
    """Evaluate, save and sample an exponential moving average of the weights with this decay
    (e.g. 0.99); unset: the weights themselves."""
    beta1: float = 0.9
    """AdamW's first-moment decay."""
    beta2: float = 0.95
    """AdamW's second-moment decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_numbers(self)
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        at_least(self, 0, "weight_decay", "grad_clip")
        in_unit(self, "warmup")
        in_unit(self, "muon_warmup")
        in_unit(self, "min_lr_ratio", hi_open=False)
        in_unit(self, "decay_frac", lo_open=True, hi_open=False)
        at_least(self, 1, "decay_on_plateau")
        check(
            self.decay_on_plateau is None or self.decay == "wsd",
            "decay_on_plateau branches a WSD decay; use it with --decay wsd",
        )
        in_unit(self, "beta1")
        in_unit(self, "beta2")
        in_unit(self, "muon_momentum", lo_open=True)
        check(self.muon_lr is None or self.muon_lr > 0, f"muon_lr must be > 0, got {self.muon_lr}")
        check(
            self.embed_lr_scale > 0 and self.head_lr_scale > 0,
            "embed_lr_scale and head_lr_scale must be > 0",
        )
        check(self.ema is None or 0 < self.ema < 1, f"ema must be in (0, 1), got {self.ema}")


@dataclass(frozen=True)
class StopConfig:
    """When a run ends: the first of its step, time and pass limits, or earlier."""

    max_iters: int = 100_000
    """Optimizer steps (the run stops earlier if time_budget or epochs runs out)."""
    time_budget: float | None = 300.0
    """Wall seconds of the whole train command, from its start to its last line: set-up,
    training, evaluations and checkpoints, further members, the n-gram partner's fit and the
    report. The learning-rate schedule follows whichever of steps, time or epochs ends first,
    so a time-budgeted run still decays fully. Without --preset, train picks the recipe
    measured best for this budget."""
    epochs: float | None = 4.0
    """Stop after this many passes over the training split (tokens seen / its tokens), e.g.
    2.5; like time_budget, the schedule follows whichever limit ends first. Unset or 0: no
    limit (--epochs 0 lifts a preset's)."""
    patience: int | None = None
    """Stop when the val loss has not improved for this many evaluations (best.pt is kept)."""
    max_bad_steps: int = 5
    """Stop (exit code 3) after this many optimizer steps in a row with a non-finite loss or
    gradient; such steps are skipped, never applied."""

    def __post_init__(self) -> None:
        check_numbers(self)
        at_least(self, 1, "max_iters", "patience", "max_bad_steps")
        check(
            self.time_budget is None or self.time_budget > 0,
            f"time_budget must be > 0 seconds, got {self.time_budget}",
        )
        check(self.epochs is None or self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}")


@dataclass(frozen=True)
class EvalConfig:
    """When and how much the training loop evaluates."""

    eval_interval: int | None = None
    """Steps between evaluations and checkpoints; unset: eval_points evaluations spread over
    the run by its progress (steps or time budget, whichever ends first)."""
    eval_points: int = 20
    """Evaluations over the whole run when eval_interval is unset (at least)."""
    eval_seconds: float = 30.0
    """With a time budget and no eval_interval: an evaluation at least every this many seconds
    of training (so that a long run notices a plateau in time); not with epochs, whose runs
    may end long before the budget: eval_points evaluations then."""
    eval_iters: int = 5
    """Batches per split in the loss estimate at each evaluation."""

    def __post_init__(self) -> None:
        check_numbers(self)
        at_least(self, 1, "eval_interval", "eval_points", "eval_iters")
        check(self.eval_seconds > 0, f"eval_seconds must be > 0, got {self.eval_seconds}")


NGRAM_MAX = 6
"""The highest order of an n-gram partner."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run: its batches, seed and device, what it starts from, and (one
    dataclass per concern) its optimiser, when it stops and when it evaluates."""

    batch_size: int = 32
    """Sequences per micro-batch on each process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    seed: int = 1337
    """Seed of the initial weights and of every batch and dropout mask (a function of seed,
    step and rank, so a resumed run draws what an uninterrupted one would)."""
    device: str = "auto"
    """auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps."""
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto: bf16 autocast on CUDA GPUs with bf16 (else fp16), and on a CPU where a short
    measured probe finds bf16 faster than fp32 (cached per machine); or fp32, bf16, fp16
    (CUDA only, with a gradient scaler)."""
    threads: int | None = None
    """torch threads to train with on a CPU; unset: chosen by timing the first steps with
    each count (and timed again when steps turn far slower), unless OMP_NUM_THREADS or
    MKL_NUM_THREADS fixes it."""
    compile: bool | None = None
    """Wrap the model in torch.compile; unset means on for CUDA unless the time budget is
    under 600 seconds (compiling takes half a minute or more), off elsewhere."""
    init_from: str | None = None
    """Start a new run from another run's weights: a run folder (its best.pt) or a
    checkpoint file; new optimiser state, schedule and steps, and the model's shape from it
    (width, depth, heads, head type cannot change). Without --preset: the finetune recipe."""
    init_embeddings: str | None = None
    """Word vectors (wordgpt .npz, word2vec .bin/.txt, GloVe; a gensim .kv with
    --trust-pickle) for the token embedding."""
    embeddings_limit: int | None = None
    """Read at most this many pretrained vectors."""
    embeddings_fit: Literal["pca", "model"] = "pca"
    """Vectors of another width: pca maps them to n_embd; model makes n_embd follow them."""
    freeze_embeddings: int = 0
    """Keep the token embedding fixed for this many steps."""
    tensorboard: bool | None = None
    """Write TensorBoard logs into RUN/tensorboard; unset means when the package is installed."""
    progress: bool = True
    """Show a progress bar."""
    ngram: int = 4
    """Order of the n-gram partner, a Kneser-Ney model of the training tokens mixed with the
    GPT at evaluation and sampling; the GPT then trains on all but the last 5% of the
    training split, where the mixture's weight is fitted (RUN/partner.json). 0: none."""
    members: int = 8
    """At most this many models: when the pass cap (--epochs) ends training with time
    budget left for another run as long, further ones (seed + 1, + 2, ...) train in
    RUN/members/, and evaluation and sampling average their probabilities. 1: one model."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The optimisers and the learning-rate schedule."""
    stop: StopConfig = field(default_factory=StopConfig)
    """When the run ends."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """When the loop evaluates."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_numbers(self)
        at_least(self, 1, "batch_size", "grad_accum", "embeddings_limit", "members", "threads")
        at_least(self, 0, "freeze_embeddings", "seed", "ngram")
        check(self.ngram <= NGRAM_MAX, f"ngram must be at most {NGRAM_MAX}, got {self.ngram}")
        check(self.device.strip() != "", "device must not be empty")
        check(
            not (self.init_from and self.init_embeddings),
            "--init-from brings its own token embedding; drop --init-embeddings",
        )


@dataclass(frozen=True)
class SampleConfig:
    """How text is drawn from a trained model."""

    max_new_tokens: int = 200
    """How many tokens to generate."""
    temperature: float = 0.8
    """Divide the logits by this; 0 means greedy (argmax); at most 100."""
    top_k: int | None = 50
    """Keep exactly the k most likely tokens; 0 keeps them all."""
    top_p: float | None = None
    """Keep the smallest set of tokens whose probability reaches p (nucleus sampling)."""
    seed: int | None = None
    """Seed of the draws (unset: a fresh one each time)."""
    use_cache: bool = True
    """Decode with the KV cache (one position per new token)."""
    allow_unk: bool = False
    """Let the model write <unk> (a word outside its vocabulary); by default it is never
    drawn, and the others share its probability."""
    ngram: bool = True
    """Mix the run's n-gram partner into each draw, when the run has one."""

    def __post_init__(self) -> None:
        check_numbers(self)
        check(
            self.temperature == 0 or 1e-3 <= self.temperature <= MAX_TEMPERATURE,
            f"temperature must be 0 (greedy) or between 0.001 and {MAX_TEMPERATURE:g}, got "
            f"{self.temperature}",
        )
        at_least(self, 0, "top_k", "max_new_tokens", "seed")
        check(
            self.top_p is None or 0.0 < self.top_p <= 1.0,
            f"top_p must be in (0, 1], got {self.top_p}",
        )


@dataclass(frozen=True)
class Word2VecConfig:
    """gensim Word2Vec settings. Defaults chosen by measurement (benchmarks/vectors.py) on Don
    Quixote and the Wikipedia sample; presets.NOTEBOOK_WORD2VEC holds the original notebook's."""

    vector_size: int = 100
    """Dimensions of each word vector."""
    window: int = 5
    """Words on each side that count as context."""
    min_count: int = 5
    """Words seen fewer times than this get no vector."""
    sg: int = 1
    """1 skip-gram, 0 CBOW."""
    epochs: int | None = None
    """Passes over the corpus; unset: enough for about 12 million words seen in all, between
    5 and 30 (30 for a book of 400,000 words)."""
    negative: int = 5
    """Negative samples per positive one."""
    sample: float = 1e-4
    """Down-sampling threshold of frequent words."""
    alpha: float = 0.025
    """Initial learning rate."""
    workers: int = 0
    """Worker threads; 0 means every available core."""
    seed: int = 1
    """Seed of the initial vectors and of the sampling."""
    split: Literal["train", "all"] = "train"
    """Which token file to learn from: train (never validation text) or all."""

    def __post_init__(self) -> None:
        check_choices(self)
        check_numbers(self)
        at_least(self, 1, "vector_size", "window", "epochs", "min_count")
        at_least(self, 0, "negative", "sample", "workers", "seed")
        check(self.sg in (0, 1), f"sg must be 1 (skip-gram) or 0 (CBOW), got {self.sg}")
        check(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
