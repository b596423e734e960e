"""Configuration dataclasses and named presets.

Every field has a docstring-style comment and values are checked in ``__post_init__``.
Presets are plain instances; the CLI maps flags onto fields with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import WordGPTError

TOKENIZERS = ("word", "char", "bpe")


@dataclass(frozen=True)
class DataConfig:
    """How raw text becomes token files."""

    dataset: str = "don-quixote"
    """A named data set (``don-quixote``, ``wikipedia-sample``) or a path to a file."""
    tokenizer: str = "word"
    """``word`` (words, punctuation and whitespace), ``char`` or ``bpe`` (byte-level)."""
    space_prefix: bool = False
    """Word tokenizer only: attach a single space to the following word (``" the"``)."""
    lowercase: bool = True
    """Lowercase the text, as the mission's notebook does."""
    newlines_to_spaces: bool = True
    """Replace line breaks by spaces, as the mission's notebook does."""
    collapse_spaces: bool = True
    """Collapse runs of spaces into one."""
    strip_gutenberg: bool = True
    """Cut a Project Gutenberg header and footer at their ``*** START OF``/``*** END OF`` lines."""
    skip_front_matter: bool = True
    """For named books, start at the first chapter (found by its words, never by an offset)."""
    encoding: str = "utf-8"
    """Encoding of a plain text file (a UTF-8 BOM is always accepted)."""
    val_fraction: float = 0.1
    """The last fraction of the text (contiguous) held out for validation."""
    vocab_size: int = 4096
    """BPE only: the size of the trained vocabulary."""
    min_count: int = 1
    """Word/char only: tokens seen fewer times than this become ``<unk>``."""
    max_vocab: int | None = None
    """Word/char only: keep at most this many tokens (the most frequent), plus ``<unk>``."""

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise WordGPTError(f"unknown tokenizer {self.tokenizer!r}; choose one of {TOKENIZERS}")
        if not 0.0 < self.val_fraction < 0.5:
            raise WordGPTError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.tokenizer == "bpe" and self.vocab_size < 257:
            raise WordGPTError(f"a byte-level BPE needs vocab_size >= 257, got {self.vocab_size}")
        if self.min_count < 1:
            raise WordGPTError(f"min_count must be >= 1, got {self.min_count}")


@dataclass(frozen=True)
class ModelConfig:
    """The GPT's shape. Defaults are the mission's plain architecture."""

    vocab_size: int = 0
    """Number of token ids; set from the tokenizer."""
    block_size: int = 128
    """Longest context the model sees."""
    n_layer: int = 4
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide ``n_embd``."""
    n_embd: int = 128
    """Width of the residual stream."""
    dropout: float = 0.0
    """Dropout on the embedding sum and on each residual branch's output."""
    attn_dropout: float = 0.0
    """Dropout on the attention weights. On a CPU any value above 0 makes PyTorch fall back
    from its fused attention kernel to the plain one (at the seed preset's 32 heads of 16,
    half of a training step); the notebook used 0.2."""
    norm: str = "pre"
    """``pre``: x + f(LN(x)) (the mission's code); ``post``: LN(x + f(x)) (the original paper)."""
    bias: bool = True
    """Biases in Linear layers and LayerNorms."""
    tie_weights: bool = False
    """Share the token embedding with the output layer (softmax head only)."""
    pos: str = "learned"
    """Position information: ``learned`` absolute embeddings or ``rope`` (rotary)."""
    head: str = "softmax"
    """Output layer: ``softmax`` (full) or ``adaptive`` (Grave et al. 2017; exact, cheaper)."""
    cutoffs: tuple[int, ...] = (2000, 8000)
    """Adaptive head only: cluster boundaries in frequency-ordered ids. With none below the
    vocabulary size there are no clusters, and the head is the full softmax."""

    def __post_init__(self) -> None:
        if self.n_head < 1 or self.n_embd % self.n_head != 0:
            raise WordGPTError(
                f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})"
            )
        if self.norm not in ("pre", "post"):
            raise WordGPTError(f"norm must be 'pre' or 'post', got {self.norm!r}")
        if self.pos not in ("learned", "rope"):
            raise WordGPTError(f"pos must be 'learned' or 'rope', got {self.pos!r}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise WordGPTError("rope needs an even head size (n_embd / n_head)")
        if self.head not in ("softmax", "adaptive"):
            raise WordGPTError(f"head must be 'softmax' or 'adaptive', got {self.head!r}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attn_dropout < 1.0):
            raise WordGPTError("dropout and attn_dropout must be in [0, 1)")
        if self.block_size < 1 or self.n_layer < 1:
            raise WordGPTError("block_size and n_layer must be positive")
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))

    def adaptive_cutoffs(self) -> list[int]:
        """Cutoffs that fit this vocabulary (those >= vocab_size are dropped)."""
        return [c for c in self.cutoffs if 0 < c < self.vocab_size]


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe and the loop's bookkeeping."""

    batch_size: int = 16
    """Sequences per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_iters: int = 2000
    """Optimizer steps (the run stops earlier if ``time_budget`` runs out)."""
    time_budget: float | None = None
    """Seconds of training (evaluations not counted); the learning-rate schedule follows
    whichever of steps or time ends first, so a time-budgeted run still decays fully."""
    lr: float = 1e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """The floor of the decay, as a fraction of ``lr`` (1.0 gives a constant rate)."""
    warmup_iters: int = 100
    """Linear warm-up steps."""
    decay: str = "cosine"
    """``cosine`` from the end of warm-up, or ``wsd``: stable, then linear decay over the last
    ``decay_frac``."""
    decay_frac: float = 0.3
    """``wsd`` only: fraction of the run spent decaying."""
    weight_decay: float = 0.1
    """AdamW weight decay, applied to matrices only (not biases, norms, or embeddings)."""
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    """Clip the global gradient norm (0 disables)."""
    eval_interval: int = 200
    """Steps between evaluations and checkpoints."""
    eval_iters: int = 20
    """Batches per split in the periodic loss estimate."""
    seed: int = 1337
    device: str = "auto"
    """``auto`` (CUDA, then MPS, then CPU), or a torch device string."""
    dtype: str = "auto"
    """``auto``: bf16 autocast on CUDA GPUs with bf16 (else fp16) and on CPUs with native bf16
    matrix products (AVX512-BF16 or AMX), else fp32; or ``fp32``, ``bf16``, ``fp16`` (CUDA
    only, with a gradient scaler)."""
    compile: bool | None = None
    """Wrap the model in ``torch.compile``; ``None`` means on for CUDA, off elsewhere."""
    init_embeddings: str | None = None
    """Word vectors (gensim KeyedVectors, word2vec or GloVe files) for the token embedding."""
    embeddings_limit: int | None = None
    """Read at most this many vectors from a pretrained file."""
    embeddings_fit: str = "pca"
    """Vectors of another width: ``pca`` maps them to ``n_embd``; ``model`` sets ``n_embd``."""
    freeze_embeddings: int = 0
    """Keep the token embedding fixed for this many steps."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "max_iters", "eval_interval", "eval_iters"):
            if getattr(self, name) < 1:
                raise WordGPTError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decay not in ("cosine", "wsd"):
            raise WordGPTError(f"decay must be 'cosine' or 'wsd', got {self.decay!r}")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise WordGPTError(f"dtype must be auto, fp32, bf16 or fp16, got {self.dtype!r}")
        if self.embeddings_fit not in ("pca", "model"):
            raise WordGPTError(
                f"embeddings_fit must be 'pca' or 'model', got {self.embeddings_fit!r}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise WordGPTError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass(frozen=True)
class SampleConfig:
    """How text is drawn from a trained model."""

    max_new_tokens: int = 200
    temperature: float = 1.0
    """0 means greedy (argmax)."""
    top_k: int | None = None
    """Keep exactly the k most likely tokens."""
    top_p: float | None = None
    """Keep the smallest set of tokens whose probability reaches p (nucleus sampling)."""
    seed: int | None = None
    use_cache: bool = True
    """Decode with the KV cache (one position per new token)."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise WordGPTError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise WordGPTError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise WordGPTError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 0:
            raise WordGPTError("max_new_tokens must be >= 0")


@dataclass(frozen=True)
class Preset:
    """A named model shape and training recipe."""

    model: ModelConfig
    train: TrainConfig
    about: str = ""


PRESETS: dict[str, Preset] = {
    "seed": Preset(
        ModelConfig(n_layer=32, n_head=32, n_embd=512, block_size=128, dropout=0.2),
        TrainConfig(
            batch_size=16,
            lr=3e-4,
            max_iters=5000,
            eval_interval=100,
            eval_iters=20,
            warmup_iters=0,
            min_lr_ratio=1.0,
            weight_decay=0.01,
            beta2=0.999,
        ),
        about="the mission's notebook: 32 layers x 512 wide, 32 heads, constant lr 3e-4 "
        "(add --attn-dropout 0.2 for its dropout on attention weights too)",
    ),
    "tiny": Preset(
        ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32),
        TrainConfig(
            batch_size=8, lr=3e-3, max_iters=200, eval_interval=50, eval_iters=5, warmup_iters=10
        ),
        about="for tests and demos: seconds on a CPU",
    ),
    "cpu": Preset(
        ModelConfig(
            n_layer=4,
            n_head=4,
            n_embd=256,
            block_size=128,
            dropout=0.1,
            attn_dropout=0.1,
            head="adaptive",
            pos="rope",
        ),
        TrainConfig(
            batch_size=32,
            lr=2e-3,
            max_iters=100_000,
            time_budget=300.0,
            warmup_iters=50,
            decay="wsd",
            decay_frac=0.4,
            eval_interval=250,
            eval_iters=10,
        ),
        about="a few minutes on a 2-core laptop: 300 s budget, bf16 where the CPU has AMX",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise WordGPTError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, ignoring keys it does not know (older or newer runs)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def override(cfg: Any, **changes: Any) -> Any:
    """A copy of ``cfg`` with the given fields changed; ``None`` values are ignored."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(cfg, **changes) if changes else cfg
