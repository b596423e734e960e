"""Export a run to Hugging Face ``transformers``: weights in safetensors, a config, and the
tokenizer as a ``PreTrainedTokenizerFast`` with the same ids.

Two forms:

- ``gpt2``: a native ``GPT2LMHeadModel`` (no remote code) for runs whose architecture is
  GPT-2's: pre-norm, learned positions, a full softmax head without a bias, ReLU
  feed-forward (``GPT2Config(activation_function="relu", n_inner=4 * n_embd)``). Our
  Linear weights are transposed into GPT-2's ``Conv1D`` layout (the reverse of nanoGPT's
  ``from_pretrained``); missing biases (``--no-bias``) become zeros.
- ``wordgpt``: every other run (rotary positions, the adaptive head, post-norm, a head
  bias). The folder carries its own modeling code, a verbatim copy of ``wordgpt/model/gpt.py``
  wrapped in a ``PreTrainedModel``, and loads with ``trust_remote_code=True``. Copying the
  one model file keeps the exported model exact for every option, with nothing to keep in
  sync by hand.

``auto`` picks ``gpt2`` when the run fits it, else ``wordgpt``.
"""

from __future__ import annotations

import inspect
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import ModelConfig
from ..corpus.tokenfiles import load_split
from ..corpus.tokenizer import UNK, to_hf, unk_id
from ..errors import WordGPTError
from ..fileio import disk_error, read_json_object, temp_name
from ..folders import expect
from ..logs import log
from ..model import gpt as model_module
from ..model.ensemble import Ensemble
from ..runs.folder import dataset_names
from ..runs.members import member_checkpoints
from ..settings import to_dict
from .loaded import Model, load


@dataclass(frozen=True)
class Exported:
    out: Path
    format: str
    files: list[str]


def gpt2_misfits(cfg: ModelConfig) -> list[str]:
    """The settings that keep a run from being a native GPT-2, each with its fix."""
    why = []
    if cfg.norm != "pre":
        why.append("norm=post (GPT-2 is pre-norm)")
    if cfg.pos != "learned":
        why.append(f"pos={cfg.pos} (GPT-2 has learned positions)")
    if cfg.head != "softmax" and cfg.adaptive_cutoffs():
        why.append("head=adaptive (GPT-2 has a full softmax)")
    if cfg.head_bias:
        why.append("head_bias (GPT-2's lm_head has no bias: train with --no-head-bias)")
    if cfg.mlp != "relu":
        why.append(f"mlp={cfg.mlp} (GPT-2 here has a ReLU feed-forward)")
    for name in ("qk_norm", "logit_softcap", "value_residual"):
        if getattr(cfg, name):
            why.append(f"{name} (not in GPT-2)")
    return why


def export(
    run_dir: str | Path, out: str | Path, which: str = "best", fmt: str = "auto"
) -> Exported:
    """Write ``run_dir``'s checkpoint to ``out`` as a Hugging Face model, tokenizer and model
    card. Everything is written into a hidden folder beside ``out`` and renamed into place
    at the end: a failed export (a full disk) leaves nothing behind, and a retry works."""
    if fmt not in ("auto", "gpt2", "wordgpt"):
        raise WordGPTError(f"format must be auto, gpt2 or wordgpt, got {fmt!r}")
    out = Path(out)
    expect(out, ("missing", "empty"), "--out", "export into a new or empty folder")
    m = load(run_dir, which, device="cpu")  # says so when it reads last.pt for want of best.pt
    if isinstance(m.gpt, Ensemble):  # transformers holds one model: the run's first
        log.info(f"note: {run_dir} is an ensemble of {len(m.gpt.members)} models; the export "
                 "holds its first, and its model card says so")  # fmt: skip
        m = replace(m, gpt=m.gpt.members[0])
    misfits = gpt2_misfits(m.gpt.cfg)
    if fmt == "gpt2" and misfits:
        raise WordGPTError(
            "this run is not a GPT-2: " + "; ".join(misfits) + ". Export it with --format wordgpt"
        )
    fmt = ("wordgpt" if misfits else "gpt2") if fmt == "auto" else fmt
    work = temp_name(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir()
        write_export(m, work, fmt, str(out))
        if out.exists():
            out.rmdir()  # empty, as checked
        work.rename(out)
    except OSError as e:
        raise disk_error(e, out) from None
    except Exception as e:  # safetensors' writer raises its own error for a failed write
        if m := re.search(r"os error (\d+)", str(e)):
            raise disk_error(OSError(int(m.group(1)), str(e)), out) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Exported(out, fmt, sorted(p.name for p in out.iterdir()))


def write_export(m: Model, folder: Path, fmt: str, name: str) -> None:
    """The model, tokenizer and model card in ``folder`` (the card loads it as ``name``, where
    the folder will be), every file readable by all (safetensors writes for the owner only)."""
    from transformers.utils import logging as hf_logging

    hf_model = to_gpt2(m) if fmt == "gpt2" else to_remote_code(m, folder)
    if (unk := unk_id(m.tokenizer)) is not None:  # generate() leaves <unk> out, as wordgpt's
        hf_model.generation_config.suppress_tokens = [unk]  # sampling does
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one small file: no bar of "model shards"
    try:
        hf_model.save_pretrained(folder, safe_serialization=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    tokenizer(m).save_pretrained(folder)
    (folder / "README.md").write_text(model_card(m, fmt, name), encoding="utf-8")
    for f in folder.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    folder.chmod(0o755)


def partner_line(m: Model, ev: dict) -> list[str]:
    """The model card's word on what the export leaves out: the run's n-gram partner and
    the further members of its ensemble."""
    out = []
    if m.partner_fit is not None:
        mixed = (ev.get("ngram") or {}).get("bits_per_char")
        with_it = f" ({mixed:.4f} bits per character with it)" if mixed else ""
        out.append(
            f"- not exported: the run's {m.partner_fit['order']}-gram partner{with_it}, which "
            "wordgpt mixes into evaluation and sampling; this export is the GPT alone"
        )
    if m.path.name == "best.pt" and (members := member_checkpoints(m.run_dir)):
        out.append(
            f"- not exported: the {len(members)} further models of the run's ensemble "
            "(RUN/members/), whose probabilities wordgpt averages with this one's"
        )
    return out


def model_card(m: Model, fmt: str, name: str) -> str:
    """A README.md for the export: what the model is, what it was trained on, its figures,
    how to load it."""
    run = m.run_dir
    summary = read_json_object(run / "summary.json")
    ev = read_json_object(run / "eval.json")
    data = m.config.get("data", {})
    datasets = dataset_names(data)  # a file by its name alone: this card is meant to be shared
    cfg = m.gpt.cfg
    bpc = ev.get("bits_per_char") or summary.get("best_val_bits_per_char_estimate")
    measured = "measured by `wordgpt eval` over the whole val split" if ev else "estimated"
    remote = ", trust_remote_code=True" if fmt == "wordgpt" else ""
    prompt = example_prompt(m)
    lines = [
        f"# {run.name}: a small GPT trained with wordgpt",
        "",
        f"- data: {datasets} ({data.get('tokenizer', '?')} tokens"
        f"{', space-prefixed' if data.get('space_prefix') else ''}, lowercased: "
        f"{data.get('lowercase', True)})",
        f"- model: {m.gpt.num_params():,} parameters, {cfg.n_layer} layers x {cfg.n_embd} wide, "
        f"{cfg.n_head} heads, context {cfg.block_size} tokens, {cfg.head} output layer",
        f"- training: {summary.get('step', m.step)} steps, {summary.get('tokens', 0):,} tokens "
        f"({m.config.get('preset') or 'custom'} preset), checkpoint step {m.step}",
        f"- val bits per character: {bpc:.4f} ({measured})" if bpc else "- val bits/char: -",
        *partner_line(m, ev),
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline",
        "",
        f'generate = pipeline("text-generation", model="{name}"{remote})',
        f'print(generate("{prompt}", max_new_tokens=30, do_sample=True)[0]["generated_text"])',
        "",
        f'tok = AutoTokenizer.from_pretrained("{name}"{remote})',
        f'model = AutoModelForCausalLM.from_pretrained("{name}"{remote})',
        f'ids = tok("{prompt}", return_tensors="pt").input_ids',
        "print(tok.decode(model.generate(ids, max_new_tokens=30, do_sample=True)[0]))",
        "```",
        "",
        "A native GPT-2 loads with no code of its own; any other form carries its model code "
        "(`modeling_wordgpt.py`), hence `trust_remote_code=True`."
        if fmt == "wordgpt"
        else "A native `GPT2LMHeadModel`: it loads with no code of its own.",
        "",
    ]
    return "\n".join(lines)


def example_prompt(m: Model) -> str:
    """A prompt in the run's own language: the first two words that start a sentence of its
    val text (its tokenizer's decoding), or "the" when the data folder is gone."""
    if m.data_dir is None:
        return "the"
    try:
        ids = load_split(m.data_dir, "val", check_ids=False)[:5000].tolist()
    except (OSError, WordGPTError):
        return "the"
    found = re.search(r"[.!?]\s+([^\W\d_]+ [^\W\d_]+)", m.tokenizer.decode(ids))
    return found.group(1) if found else "the"


# ------------------------------------------------------------------------ tokenizer


def tokenizer(m: Model):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=to_hf(m.tokenizer),
        unk_token=UNK,
        model_max_length=m.gpt.cfg.block_size,
        clean_up_tokenization_spaces=False,
    )


# ------------------------------------------------------------------------ native GPT-2


def to_gpt2(m: Model):
    """A ``GPT2LMHeadModel`` holding the run's weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = m.gpt.cfg
    config = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=4 * cfg.n_embd,
        activation_function="relu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=cfg.tie_weights,
        bos_token_id=None,
        eos_token_id=None,
    )
    hf = GPT2LMHeadModel(config).eval()
    missing, unexpected = hf.load_state_dict(gpt2_state_dict(m.gpt), strict=False)
    if unexpected or [k for k in missing if not k.endswith(".attn.bias")]:
        raise WordGPTError(f"GPT-2 export left weights unmatched: {missing + unexpected}")
    return hf


def gpt2_state_dict(gpt) -> dict[str, torch.Tensor]:
    """Our names and layout to GPT-2's: Linear (out, in) becomes Conv1D (in, out)."""
    sd = {k: v.detach() for k, v in gpt.state_dict().items()}
    C = gpt.cfg.n_embd

    def bias(name: str, n: int) -> torch.Tensor:
        return sd.get(name, torch.zeros(n))

    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"]}
    for i in range(gpt.cfg.n_layer):
        p, q = f"h.{i}.", f"transformer.h.{i}."
        out |= {
            q + "ln_1.weight": sd[p + "ln_1.weight"],
            q + "ln_1.bias": bias(p + "ln_1.bias", C),
            q + "attn.c_attn.weight": sd[p + "attn.qkv.weight"].t().contiguous(),
            q + "attn.c_attn.bias": bias(p + "attn.qkv.bias", 3 * C),
            q + "attn.c_proj.weight": sd[p + "attn.proj.weight"].t().contiguous(),
            q + "attn.c_proj.bias": bias(p + "attn.proj.bias", C),
            q + "ln_2.weight": sd[p + "ln_2.weight"],
            q + "ln_2.bias": bias(p + "ln_2.bias", C),
            q + "mlp.c_fc.weight": sd[p + "mlp.fc.weight"].t().contiguous(),
            q + "mlp.c_fc.bias": bias(p + "mlp.fc.bias", 4 * C),
            q + "mlp.c_proj.weight": sd[p + "mlp.proj.weight"].t().contiguous(),
            q + "mlp.c_proj.bias": bias(p + "mlp.proj.bias", C),
        }
    out["transformer.ln_f.weight"] = sd["ln_f.weight"]
    out["transformer.ln_f.bias"] = bias("ln_f.bias", C)
    out["lm_head.weight"] = sd["lm_head.weight"]
    return out


# ------------------------------------------------------------------------ remote code

_CONFIG_SHIM = '''
class ModelConfig(types.SimpleNamespace):
    """wordgpt's ModelConfig fields, as the exported config.json stores them."""

{method}
'''

_CONFIGURATION = '''"""wordgpt's model config for transformers (written by `wordgpt export`)."""

from transformers import PretrainedConfig


class WordGPTConfig(PretrainedConfig):
    model_type = "wordgpt"

    def __init__(self, wordgpt=None, **kwargs):
        self.wordgpt = dict(wordgpt or {})
        self.vocab_size = self.wordgpt.get("vocab_size", 0)
        self.hidden_size = self.wordgpt.get("n_embd", 0)
        self.num_hidden_layers = self.wordgpt.get("n_layer", 0)
        self.num_attention_heads = self.wordgpt.get("n_head", 0)
        self.max_position_embeddings = self.wordgpt.get("block_size", 0)
        kwargs["use_cache"] = False  # no KV cache through transformers: each step runs the window
        super().__init__(**kwargs)
'''

_MODELING = '''"""A wordgpt GPT as a Hugging Face causal LM (exported by `wordgpt export`).

The model itself is wordgpt_model.py, a verbatim copy of wordgpt's model/gpt.py. Its forward
pass sees at most block_size tokens: longer inputs keep their last block_size tokens, and
the logits cover those positions. With the adaptive head the logits are log-probabilities.
"""

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_wordgpt import WordGPTConfig
from .wordgpt_model import GPT, ModelConfig, rope_tables


class WordGPTForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = WordGPTConfig
    base_model_prefix = "gpt"
    _no_split_modules = ["Block"]
    _tied_weights_keys = {"gpt.lm_head.weight": "gpt.wte.weight"}

    def __init__(self, config):
        super().__init__(config)
        d = dict(config.wordgpt)
        d["cutoffs"] = tuple(d.get("cutoffs", ()))
        self.gpt = GPT(ModelConfig(**d))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        """Weights come from the checkpoint; only the rotary tables, buffers that are not
        saved, are computed again."""
        if getattr(module, "rope_cos", None) is not None:
            cfg = module.cfg
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head)
            module.rope_cos.copy_(cos)
            module.rope_sin.copy_(sin)

    def get_input_embeddings(self):
        return self.gpt.wte

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        idx = input_ids[:, -self.gpt.cfg.block_size :]
        logits = self.gpt(idx)
        loss = None
        if labels is not None:
            labels = labels[:, -idx.size(1) :]
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return CausalLMOutput(loss=loss, logits=logits)
'''


def model_source() -> str:
    """wordgpt's model/gpt.py, its one import of wordgpt's config replaced by a namespace that
    carries the same fields and the same ``adaptive_cutoffs`` method."""
    src = inspect.getsource(model_module)
    method = inspect.getsource(ModelConfig.adaptive_cutoffs)
    shim = _CONFIG_SHIM.format(method=method.rstrip())
    line = "from ..config import ModelConfig\n"
    if line not in src:
        raise WordGPTError("model/gpt.py no longer imports ModelConfig as export expects")
    return src.replace(line, "import types\n" + shim)


def to_remote_code(m: Model, out: Path):
    """The run as a ``WordGPTForCausalLM`` whose code is written into ``out``."""
    import importlib.util
    import sys

    (out / "wordgpt_model.py").write_text(model_source(), encoding="utf-8")
    (out / "configuration_wordgpt.py").write_text(_CONFIGURATION, encoding="utf-8")
    (out / "modeling_wordgpt.py").write_text(_MODELING, encoding="utf-8")
    # import the written package once to build the model object we save
    name = f"_wordgpt_export_{abs(hash(str(out.resolve())))}"
    spec = importlib.util.spec_from_file_location(
        name, out / "__init__.py", submodule_search_locations=[str(out)]
    )
    (out / "__init__.py").write_text("", encoding="utf-8")
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[name] = pkg
    try:
        modeling = importlib.import_module(f"{name}.modeling_wordgpt")
        cfg_mod = importlib.import_module(f"{name}.configuration_wordgpt")
        config = cfg_mod.WordGPTConfig(
            wordgpt=to_dict(m.gpt.cfg), tie_word_embeddings=m.gpt.cfg.tie_weights
        )
        config.auto_map = {
            "AutoConfig": "configuration_wordgpt.WordGPTConfig",
            "AutoModelForCausalLM": "modeling_wordgpt.WordGPTForCausalLM",
        }
        hf = modeling.WordGPTForCausalLM(config).eval()
        hf.gpt.load_state_dict(m.gpt.state_dict())
        hf.generation_config.use_cache = False
    finally:
        (out / "__init__.py").unlink(missing_ok=True)
        for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[k]
    return hf
