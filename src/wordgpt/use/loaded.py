"""A trained run loaded for use: :func:`load` reads a run folder's ``best.pt`` (or
``last.pt``) on its own (the checkpoint carries the model config, the weights and the
tokenizer) and gives a :class:`Model` that generates text and is evaluated."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..adapt_config import AdaptConfig
from ..config import DataConfig, SampleConfig
from ..corpus.build import prepare
from ..corpus.tokenfiles import (
    UNK_WORDS,
    check_fingerprint,
    load_meta,
    load_split,
    load_tokenizer,
    load_unk_words,
)
from ..corpus.tokenizer import Tokenizer
from ..errors import CheckpointError, DataError, WordGPTError
from ..logs import log
from ..model.device import check_memory, pick_device
from ..model.ensemble import Ensemble
from ..model.gpt import GPT
from ..model.mixture import Partner, fit_mixture
from ..model.ngram import KneserNey
from ..model.threads import Threads, given_threads
from ..runs import checkpoint
from ..runs.members import member_checkpoints, read_partner, write_partner
from ..settings import from_dict
from ..training.holdout import gpt_tokens
from .adapt import WARM_SHARE, Adaptation
from .chars import by_characters
from .evaluate import EvalResult, NgramSpec, evaluate, token_nll, warm_copy
from .generate import Copies, Generation, find_copies, generate, stream_text


@dataclass(repr=False)
class Model:
    """A trained run, ready to generate text and to be evaluated (what :func:`load` returns)."""

    gpt: GPT | Ensemble
    """The model: one GPT, or the ensemble of a run that trained further members."""
    tokenizer: Tokenizer
    run_dir: Path
    config: dict
    step: int
    device: torch.device
    path: Path
    """The checkpoint file the weights came from."""
    partner_fit: dict | None = None
    """The run's n-gram partner as RUN/partner.json keeps it (order, the GPT's weight, its
    figures on the held-out slice), or None."""
    threads: int | None = None
    """torch threads on a CPU (None: chosen by timing the first batches or tokens, unless
    OMP_NUM_THREADS fixes it)."""
    _partner: Partner | None = field(default=None, init=False)
    _counts: dict = field(default_factory=dict, init=False)
    _data_checked: bool = field(default=False, init=False)

    def __repr__(self) -> str:
        m, t = self.gpt.cfg, self.tokenizer
        n = len(self.gpt.members) if isinstance(self.gpt, Ensemble) else 1
        return (f"<wordgpt Model {self.run_dir} ({self.path.name}, step {self.step}"
                f"{f', an ensemble of {n}' if n > 1 else ''}): "
                f"{self.gpt.num_params():,} parameters, {m.n_layer} layers x {m.n_embd}, "
                f"{t.kind} tokens, vocabulary {t.vocab_size:,}>")  # fmt: skip

    @property
    def data_dir(self) -> Path | None:
        """The data folder the run was trained on, when it is still there (one prepared
        again since, with other token files, is refused: :func:`check_fingerprint`)."""
        d = Path(self.config.get("data_dir") or "")
        if not (d / "train.bin").is_file():
            return None
        if not self._data_checked:
            check_fingerprint(d, self.config.get("data_fingerprint"), f"run {self.run_dir}")
            self._data_checked = True
        return d

    @property
    def partner(self) -> Partner | None:
        """The n-gram partner that sampling mixes in (None without one, or without the
        training split it counts, which is said once)."""
        if self._partner is None and self.partner_fit is not None:
            if self.data_dir is None:
                log.warning(f"note: the n-gram partner of {self.run_dir} counts its training "
                            "split, whose data folder is gone; the GPT alone")  # fmt: skip
                self.partner_fit = None
                return None
            fit = self.partner_fit
            self._partner = Partner(self.ngram_model(fit["order"]), fit["gpt_weight"])
        return self._partner

    def ngram_model(self, order: int) -> KneserNey:
        """The Kneser-Ney model of ``order`` of the run's training split, counted once (the
        partner of evaluation and sampling)."""
        if order not in self._counts:
            self._counts[order] = KneserNey(self.training_tokens(), self.gpt.cfg.vocab_size, order)
        return self._counts[order]

    def fit_partner(self, order: int, max_tokens: int | None = None) -> dict:
        """Fit the GPT's weight in a mixture with a Kneser-Ney model of ``order`` on the end
        of the training split (:func:`.mixture.fit_mixture`; a run trained with a partner kept
        that slice from the GPT), on at most ``max_tokens`` of it (its start), and keep it in
        RUN/partner.json."""
        B, V, train = self.gpt.cfg.block_size, self.gpt.cfg.vocab_size, self.training_tokens()
        held_out = gpt_tokens(len(train), order)  # where the slice kept from the GPT starts
        fit = fit_mixture(lambda t: token_nll(self.gpt, t, B, device=self.device), train,
                          held_out, V, order, max_tokens)  # fmt: skip
        write_partner(self.run_dir, fit)
        self.partner_fit, self._partner = fit, None
        return fit

    def thread_choice(self, what: str) -> Threads | None:
        """What chooses the thread count of a loop of ``what`` (on a CPU)."""
        cpu = self.device.type == "cpu"
        return Threads(given_threads(self.threads), what=what) if cpu else None

    def generate(
        self, prompt: str = "", cfg: SampleConfig | None = None, copy_min: int | None = None,
        **settings,
    ) -> Generation:  # fmt: skip
        """The text the model writes after ``prompt``, with its token ids, its seed and the
        spans of it found verbatim in the training text. ``settings`` are SampleConfig
        fields (``max_new_tokens=50``, ``temperature=0``, ``seed=1``); ``str()`` of the
        result is the text."""
        cfg = replace(cfg or SampleConfig(), **settings)
        partner = self.partner if cfg.ngram else None
        return generate(self.gpt, self.tokenizer, prompt, cfg, self.data_dir, copy_min, partner,
                        self.thread_choice("token"))  # fmt: skip

    def stream(
        self, prompt: str = "", cfg: SampleConfig | None = None, ids: list | None = None,
        **settings,
    ) -> Iterator[str]:  # fmt: skip
        """The generated text piece by piece as it comes (the prompt not repeated); the new
        token ids go into ``ids`` when given."""
        cfg = replace(cfg or SampleConfig(), **settings)
        partner = self.partner if cfg.ngram else None
        return stream_text(self.gpt, self.tokenizer, prompt, cfg, ids, partner,
                           self.thread_choice("token"))  # fmt: skip

    def copies(self, ids: list[int], copy_min: int | None = None,
               lstrip: bool = False) -> Copies | None:  # fmt: skip
        """The copied spans of generated ``ids`` in this run's training text (None without
        its data folder); ``lstrip``: offsets into the text shown without leading spaces."""
        data = self.data_dir
        return None if data is None else find_copies(self.tokenizer, data, ids, copy_min, lstrip)

    def evaluate(
        self,
        split: str = "val",
        data_dir: str | Path | None = None,
        batch_size: int = 16,
        progress: bool = False,
        deadline: float | None = None,
        stride: int | None = None,
        adapt: AdaptConfig | None = None,
        ngram: int | None = None,
        chars: bool = False,
        warm: bool | AdaptConfig = False,
    ) -> EvalResult:
        """Loss, perplexity and bits per character over the whole ``split`` (a progress bar
        on a terminal with ``progress``). ``stride``: windows start every ``stride`` tokens, so
        each token after the first has at least ``block_size - stride`` tokens of context
        (default: the block, consecutive windows). ``adapt``: also the adaptive figure, the
        model learning from each window after scoring it by this rule (:mod:`.adapt`).
        ``ngram``: also the figure of the GPT mixed with its n-gram partner (unset: the
        run's own, when it has one; 0: none; N: a Kneser-Ney model of order N of the run's
        training tokens, the run's partner if it has that order, else its weight fitted
        now). ``chars``: also read by characters (:func:`.chars.by_characters`). ``warm``:
        first learn from the held-out end of the training split (:func:`warm_up`). With a
        ``deadline`` (a perf_counter reading) it raises ``OutOfTimeError`` early when the
        split would not be done by then."""
        # the run's own folder is checked to be the data it trained on
        data_dir = Path(data_dir or self.data_dir or self.config["data_dir"])
        meta = load_meta(data_dir)
        if not checkpoint.same_vocabulary(load_tokenizer(data_dir), self.tokenizer):
            raise CheckpointError(f"{data_dir} was tokenized with another vocabulary than run "
                                  f"{self.run_dir}")  # fmt: skip
        read_spell, how = None, None
        if adapt is not None:  # the rms rule measures its steps on the training tokens
            read_spell = read_spell_bits(self.tokenizer, data_dir, split, meta)
            train = load_split(self.data_dir, "train") if self.data_dir else None
            how = Adaptation.of(adapt, self.gpt, train, self.gpt.cfg.block_size, self.device)
        spec = self._ngram_spec(ngram)
        gpt, warm_info = warm_up(self, spec, warm, adapt, how, split) if warm else (self.gpt, None)
        by, nats = None, {}
        if chars:  # first: the token figures then take the GPT's nats from it
            by, nats = by_characters(self, data_dir, split, ngram, stride, how, gpt)
        result = evaluate(
            gpt,
            load_split(data_dir, split),
            meta["splits"][split],
            block_size=self.gpt.cfg.block_size,
            split=split,
            batch_size=batch_size,
            device=self.device,
            progress=progress,
            deadline=deadline,
            stride=stride,
            adapt=how,
            ngram=spec,
            read_spell_bits=read_spell,
            threads=self.thread_choice("batch"),
            **nats,
        )
        return replace(result, by_chars=by, warmed=warm_info)

    def _ngram_spec(self, ngram: int | None) -> NgramSpec | None:
        """What :func:`.evaluate.evaluate` mixes in for ``ngram`` (see :meth:`evaluate`)."""
        fit = self.partner_fit
        if ngram == 0 or (ngram is None and (fit is None or self.data_dir is None)):
            return None
        order = ngram or fit["order"]
        same = fit is not None and fit["order"] == order
        V, kn = self.gpt.cfg.vocab_size, self.ngram_model(order)
        return NgramSpec(self.training_tokens(), V, order, fit if same else None, kn)

    def training_tokens(self):
        """The run's training split (its own data folder's train.bin)."""
        if self.data_dir is None:
            raise WordGPTError(f"run {self.run_dir} names no data folder with its training tokens")
        return load_split(self.data_dir, "train")

    def evaluate_text(self, path: str | Path, encoding: str | None = None, **options) -> EvalResult:
        """Loss and bits per character over any text file, cleaned as the run's training
        text was and encoded with the run's vocabulary (unknown words count as <unk>);
        ``options`` as :meth:`evaluate`'s (``stride``, ``adapt``, ...)."""
        import tempfile

        cfg = from_dict(DataConfig, {**self.config.get("data", {}), "dataset": str(path)})
        if encoding:
            cfg = replace(cfg, encoding=encoding)
        with tempfile.TemporaryDirectory(prefix="wordgpt-eval-") as tmp:
            prepare(tmp, cfg, tokenizer_from=self.tokenizer, progress=False, holdout=False)
            return replace(self.evaluate("val", tmp, **options), split=Path(path).name)


def warm_up(m: Model, spec: NgramSpec | None, warm: bool | AdaptConfig, adapt: AdaptConfig | None,
            how: Adaptation | None, split: str = "val") -> tuple:  # fmt: skip
    """A copy of ``m``'s GPT that has learned from the end of the training split it did not
    train on (the slice the partner's weight and the character mixer are fitted on, right
    before val in a book), one step per block of ``warm``'s rule (``True``: ``adapt``'s, made
    ready as ``how``, or the default rule) at :data:`.adapt.WARM_SHARE` of its rate
    (:func:`.evaluate.warm_copy`); and what it read (:attr:`.evaluate.EvalResult.warmed`).
    Refused in one line for a run that trained on its whole training split (trained without
    a partner), or with a partner ``spec`` fitted now (on the slice it would have read), or
    before the training ``split`` (which holds the slice)."""
    if split == "train":
        raise WordGPTError("--warm learns from the end of the training split: it reads the "
                           "val split (or a --text) after it")  # fmt: skip
    if spec is not None and spec.fit is None:
        raise WordGPTError("--warm learns from the slice a partner is fitted on: mix in the "
                           "run's own partner (leave --ngram out), or none")  # fmt: skip
    train = m.training_tokens()
    cut = gpt_tokens(len(train), m.config["train"].get("ngram", 0))  # as training held out
    if cut >= len(train) - 1:
        raise WordGPTError(f"--warm learns from the end of the training split that the GPT did "
                           f"not train on, and run {m.run_dir} trained on all of it (it trained "
                           "without an n-gram partner)")  # fmt: skip
    rule = warm if isinstance(warm, AdaptConfig) else adapt or AdaptConfig()
    block = m.gpt.cfg.block_size
    if how is None or rule != adapt:
        how = Adaptation.of(rule, m.gpt, train, block, m.device)
    held = np.asarray(train[cut - 1 :])  # from the last token it trained on
    gpt, nats = warm_copy(m.gpt, held, block, how, m.device, m.thread_choice("window"))
    summary = how.summary()
    summary["lr"] *= WARM_SHARE
    return gpt, {"tokens": int(len(train) - cut), "nats": nats, **summary}


def read_spell_bits(tokenizer: Tokenizer, data_dir: Path, split: str, meta: dict) -> float | None:
    """The split's spelling bits with the spelling model reading its <unk> words as it
    goes (adaptive evaluation), when the data folder keeps them."""
    words = load_unk_words(data_dir, split)
    if words is None or len(words) != meta["splits"][split].get("unk", 0):
        if meta["splits"][split].get("unk"):
            log.warning(f"note: {data_dir} does not keep its {split} split's <unk> words in "
                        "order (prepared before they were kept): the adaptive figures "
                        "spell them with the static model; prepare it again for the "
                        "spelling that reads")  # fmt: skip
        return None
    spelling = tokenizer.spelling()
    recorded = meta["splits"][split].get("unk_spell_bits", 0.0)
    if abs(float(spelling.bits_many(words).sum()) - recorded) > 1e-6 * max(recorded, 1.0):
        raise DataError(
            f"{data_dir}/{UNK_WORDS[split]}: its words are not the {split} split's <unk> words "
            "(their spelling costs other bits than meta.json records); prepare the folder again"
        )
    return float(spelling.read_bits(words).sum())


def load(
    run_dir: str | Path, which: str = "best", device: str = "auto", threads: int | None = None
) -> Model:
    """Load a run folder's ``best.pt`` (``last.pt`` when it has no best yet, which is
    said), or ``last.pt``, or a checkpoint file, for use. The ``best.pt`` of a run folder that
    trained further members (``RUN/members/K``) loads as the :class:`.ensemble.Ensemble` of
    them all; a checkpoint file named alone is one model."""
    path = checkpoint.checkpoint_path(run_dir, which)
    ck = checkpoint.read(path)
    if which == "best" and path.name == "last.pt" and Path(run_dir).is_dir():
        log.warning(f"note: {run_dir} has no best.pt yet; reading last.pt (step {ck.get('step')})")
    dev = pick_device(device)
    tok = checkpoint.tokenizer(ck, path)
    gpt = read_gpt(ck, path, dev, tok)
    if (
        Path(run_dir).is_dir()
        and path.name == "best.pt"
        and (members := member_checkpoints(path.parent))
    ):
        others = [read_gpt(checkpoint.read(m), m, dev, tok) for m in members]
        for path_, other in zip(members, others, strict=True):
            if other.cfg.block_size != gpt.cfg.block_size:
                raise CheckpointError(
                    f"{path_}: a member of block size {other.cfg.block_size}, the run's "
                    f"{gpt.cfg.block_size}; an ensemble's members read the same context (move "
                    "that member out of the run folder)"
                )
        gpt = Ensemble([gpt, *others])
    config = {
        "data_dir": ck.get("data_dir", ""),
        "data_fingerprint": ck.get("data_fingerprint"),
        "model": ck["model_config"],
        "train": ck.get("train_config", {}),
        "data": ck.get("data_config", {}),
        "preset": ck.get("preset"),
    }
    partner = read_partner(path.parent)
    step = int(ck.get("step", 0))
    return Model(gpt, tok, path.parent, config, step, dev, path, partner, threads)


def read_gpt(ck: dict, path: Path, dev: torch.device, tok: Tokenizer) -> GPT:
    """The GPT of checkpoint ``ck`` (read from ``path``), checked, on ``dev``, in eval mode."""
    cfg = checkpoint.model_config(ck, path)
    check_memory(cfg, device=str(dev), doing="load")
    if tok.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"{path}: tokenizer and model disagree on the vocabulary size")
    if not checkpoint.same_vocabulary(ck["tokenizer"], tok):
        raise CheckpointError(f"{path}: its tokenizer differs from the run's")
    gpt = GPT(cfg)
    checkpoint.load_weights(gpt, ck, path)
    bad = checkpoint.non_finite(ck["model"])
    if bad:
        raise CheckpointError(f"{path} holds weights that are not finite ({bad[0]}, ...)")
    return gpt.to(dev).eval()
