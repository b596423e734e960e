"""Leaving wordgpt: a run exported to Hugging Face transformers gives the same logits, the
same token ids and the same text."""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import wordgpt
from wordgpt.corpus import tokenizer as tokenizers
from wordgpt.use.train_run import train

from .helpers import cli, examples, need, one_line_error
from .reference_corpus import train_tokenizer

transformers = need("transformers")

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}
VARIANTS = {
    "gpt2": {"head_bias": False},
    "gpt2-tied-nobias": {"tie_weights": True, "bias": False, "head_bias": False},
    "rope-adaptive": {"pos": "rope", "head": "adaptive", "cutoffs": (100, 500)},
    "post-norm-head-bias": {"norm": "post"},
}
FORMAT = {"gpt2": "gpt2", "gpt2-tied-nobias": "gpt2"}


@pytest.fixture(scope="module", params=list(VARIANTS))
def exported(request, word_data, tmp_path_factory):
    from wordgpt.use.export import export

    root = tmp_path_factory.mktemp(request.param)
    train(word_data, root / "run", preset="tiny", max_iters=30, **VARIANTS[request.param], **QUIET)
    e = export(root / "run", root / "hf")
    assert e.format == FORMAT.get(request.param, "wordgpt")
    return request.param, root / "run", e.out


def load_hf(out):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    return hf, AutoTokenizer.from_pretrained(out)


@pytest.mark.slow
def test_exported_logits_ids_and_text_are_wordgpts(exported, corpus_file):
    name, run, out = exported
    hf, tk = load_hf(out)
    m = wordgpt.load(run, device="cpu")
    text = corpus_file.read_text(encoding="utf-8")[:3000].lower().replace("\n", " ")
    ids = tk(text)["input_ids"]
    assert ids == m.tokenizer.encode(text)
    tok = m.tokenizer
    pieces = tok.split(tok.normalizer(text))  # the same cleaning, then exact but for <unk>s
    assert tk.decode(ids) == "".join(t if t in tok.stoi else tokenizers.UNK for t in pieces)
    x = torch.tensor([ids[: m.gpt.cfg.block_size]])
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, m.gpt(x), atol=1e-4, rtol=0)
    if FORMAT.get(name) == "gpt2":
        assert type(hf).__name__ == "GPT2LMHeadModel"
        assert not list(out.glob("*.py"))  # no remote code


@pytest.mark.slow
def test_the_text_generation_pipeline_runs_and_greedy_equals_ours(exported):
    from transformers import pipeline

    _, run, out = exported
    hf, tk = load_hf(out)
    m = wordgpt.load(run, device="cpu")
    pipe = pipeline("text-generation", model=hf, tokenizer=tk)
    got = pipe("the knight", max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert got == "the knight" + m.generate("the knight", max_new_tokens=8, temperature=0).text


@pytest.mark.slow
def test_past_the_block_the_exports_greedy_text_is_samples_without_its_cache(exported):
    """Past the block each new token reads the last whole block, as ``sample --no-use-cache``
    does (``sample``'s cache re-reads half a block when the block is full); the native GPT-2
    form, as every ``GPT2LMHeadModel``, stops at its block: what docs/export.md says."""
    from transformers import pipeline

    name, run, out = exported
    hf, tk = load_hf(out)
    m = wordgpt.load(run, device="cpu")
    n = m.gpt.cfg.block_size + 8
    pipe = pipeline("text-generation", model=hf, tokenizer=tk)
    if FORMAT.get(name) == "gpt2":
        with pytest.raises(IndexError):  # no position past n_positions
            pipe("the knight", max_new_tokens=n, do_sample=False)
        return
    got = pipe("the knight", max_new_tokens=n, do_sample=False)[0]["generated_text"]
    plain = m.generate("the knight", max_new_tokens=n, temperature=0, use_cache=False)
    assert got == "the knight" + plain.text


def test_a_run_that_is_not_gpt2_is_refused_as_gpt2_naming_the_setting(word_data, tmp_path):
    train(word_data, tmp_path / "run", preset="tiny", max_iters=2, pos="rope", **QUIET)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "export",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "hf"),
            "--format",
            "gpt2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "pos=rope" in r.stderr and "--format wordgpt" in r.stderr
    assert "head_bias" in r.stderr and "--no-head-bias" in r.stderr  # the tiny preset has one


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_char_and_bpe_tokenizers_export_with_the_same_ids(kind, corpus_file):
    text = corpus_file.read_text(encoding="utf-8")[:20000]
    tok = train_tokenizer(kind, text, vocab_size=400)
    hf = tokenizers.to_hf(tok)
    assert hf.encode(text).ids == tok.encode(text)
    assert hf.decode(hf.encode(text).ids) == text


@settings(max_examples=examples(150), deadline=None)
@given(
    text=st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn")), max_size=60),
    space_prefix=st.booleans(),
)
def test_the_hugging_face_word_split_is_pythons_on_any_text(text, space_prefix):
    tok = train_tokenizer("word", text + " a", space_prefix=space_prefix)
    hf = tokenizers.to_hf(tok)
    assert hf.encode(text).ids == tok.encode(text)
    assert hf.decode(hf.encode(text).ids) == text


# ---------------------------------------------------- errors are one line and leave nothing behind


def test_export_to_a_file_or_an_unwritable_place_is_one_line(run, tmp_path):
    need("transformers")
    (tmp_path / "afile").write_text("x")
    assert "is a file" in one_line_error(cli("export", run, "--out", tmp_path / "afile"))
    err = one_line_error(cli("export", run, "--out", "/proc/wordgpt-export-test"))
    assert "cannot write" in err or "permission" in err.lower()


@pytest.mark.slow
def test_a_full_disk_during_export_leaves_nothing_and_a_retry_works(run, tmp_path):
    need("transformers")
    out = tmp_path / "hf"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    err = one_line_error(cli("export", run, "--out", out, preexec_fn=limit))
    assert "disk full" in err and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    r = cli("export", run, "--out", out)
    assert r.returncode == 0, r.stderr
    assert (out / "README.md").is_file() and (out / "model.safetensors").stat().st_mode & 0o044
    card = (out / "README.md").read_text()
    assert f'from_pretrained("{out}"' in card and ".tmp" not in card  # where it is, not was


@pytest.mark.slow
def test_export_says_when_it_takes_last_pt(run, tmp_path):
    need("transformers")
    r2 = tmp_path / "r"
    shutil.copytree(run, r2)
    (r2 / "best.pt").unlink()
    r = cli("export", r2, "--out", tmp_path / "hf")
    assert r.returncode == 0 and "no best.pt yet; reading last.pt (step 20)" in r.stderr


@pytest.mark.slow
def test_the_model_cards_example_runs_without_a_prompt_and_speaks_the_runs_language(exported):
    """The card's Python block, run as a script with no terminal to answer a question: it ends
    with exit 0, never asks to run custom code, and prompts with words of the run's own text;
    a native GPT-2 needs no trust_remote_code at all."""
    import re

    from wordgpt.corpus.tokenfiles import load_split

    name, run, out = exported
    card = (out / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    prompt = re.search(r'generate\("([^"]+)"', code).group(1)
    m = wordgpt.load(run, device="cpu")
    val = m.tokenizer.decode(load_split(m.data_dir, "val")[:5000].tolist())
    assert re.search(r"[.!?]\s+" + re.escape(prompt) + r"\b", val), prompt  # starts a sentence
    assert ("trust_remote_code" in code) == (FORMAT.get(name) != "gpt2")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=300, cwd=out)  # fmt: skip
    said = r.stdout + r.stderr
    assert r.returncode == 0 and "Do you wish" not in said and "model of type" not in said, said
    assert r.stdout.count(prompt) >= 2, r.stdout


def test_the_model_card_names_no_local_path_and_the_docs_load_it_as_the_card_does(run):
    """The card is meant to be shared: the text it was trained on by its file name, never a
    path of this machine; docs/export.md loads the tokenizer the way the card does (without
    trust_remote_code, transformers stops to ask)."""
    import re

    from wordgpt.use.export import model_card

    from .helpers import ROOT

    m = wordgpt.load(run)
    card = model_card(m, "wordgpt", "hf/dq")
    trained_on = m.config["data"]["dataset"][0]
    assert "/" in trained_on and str(Path(trained_on).parent) not in card
    assert f"- data: {Path(trained_on).name} (" in card
    line = re.search(r"tok = AutoTokenizer\.from_pretrained\(.*\)", card).group(0)
    assert line in (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
