"""Generation (wordgpt.use.generate): the sampling rules, the KV-cache loop against a plain
forward pass, <unk> never drawn, streamed text, and the result with its copied spans."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from wordgpt.config import ModelConfig, SampleConfig
from wordgpt.corpus.tokenizer import UNK, WordTokenizer
from wordgpt.model.gpt import GPT
from wordgpt.model.sampling import SHOWCASE, generate_ids, sample_next
from wordgpt.presets import NOTEBOOK_MODEL
from wordgpt.use.generate import decode_stream, generate, stream_text

GREEDY = SampleConfig(temperature=0, seed=0)


def model(**kw) -> GPT:
    """A tiny seeded model (2 layers x 16, block 16, 50 tokens), in eval mode."""
    base = {**NOTEBOOK_MODEL, "vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2,
            "n_embd": 16, "dropout": 0.0}  # fmt: skip
    torch.manual_seed(0)
    return GPT(ModelConfig(**{**base, **kw})).eval()


def favours_unk() -> GPT:
    """A model whose next token is almost always id 0 (<unk>), then id 7, whatever came."""
    m = model()
    with torch.no_grad():
        m.lm_head.weight.zero_()
        m.lm_head.bias.fill_(-5.0)
        m.lm_head.bias[0], m.lm_head.bias[7] = 5.0, 0.0
    return m


# ------------------------------------------------------------------ the sampling rules


def test_top_k_1_equals_greedy_and_temperature_0_is_argmax():
    logits = torch.randn(4, 50)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next(logits, 1.0, top_k=1, generator=g), logits.argmax(-1))
    assert torch.equal(sample_next(logits, 0.0, generator=g), logits.argmax(-1))


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = torch.zeros(1, 10)  # ten-way tie
    g = torch.Generator().manual_seed(0)
    seen = {int(sample_next(logits, 1.0, top_k=3, generator=g)) for _ in range(300)}
    assert len(seen) == 3


def test_top_p_keeps_the_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(probs.log(), 1.0, top_p=0.75, generator=g)) for _ in range(300)}
    assert draws == {0, 1}  # 0.5 + 0.3 reaches 0.75
    draws = {int(sample_next(probs.log(), 1.0, top_p=0.1, generator=g)) for _ in range(50)}
    assert draws == {0}


def test_a_banned_id_is_never_drawn_and_the_runner_up_takes_its_place():
    logits = torch.tensor([[5.0, -5.0, 0.0, -5.0]])
    assert int(sample_next(logits, 0.0, ban=0)) == 2
    g = torch.Generator().manual_seed(0)
    assert 0 not in {int(sample_next(logits, 1.0, generator=g, ban=0)) for _ in range(200)}


# ------------------------------------------------------------------ the loop


@pytest.mark.parametrize(
    "kw", [{}, {"pos": "rope"}, {"head": "adaptive", "cutoffs": (8, 24)}], ids=str
)
def test_cached_and_uncached_generation_agree_within_the_block(kw):
    m = model(**kw)
    a = list(generate_ids(m, [3, 1, 4, 1], replace(GREEDY, max_new_tokens=12)))
    b = list(generate_ids(m, [3, 1, 4, 1], replace(GREEDY, max_new_tokens=12, use_cache=False)))
    assert a == b and len(a) == 12


@pytest.mark.parametrize("kw", [{}, {"pos": "rope"}], ids=str)
def test_after_the_cache_refills_it_equals_the_uncached_model_on_the_same_window(kw):
    """Greedy generation far past the block size: whenever the context fills the block,
    the cache restarts from the last block // 2 tokens. Every token must be the argmax of
    a plain, uncached forward pass over exactly that window."""
    m = model(**kw)
    block = m.cfg.block_size
    prompt = [5, 9, 2, 7, 1]
    seq = prompt + list(generate_ids(m, prompt, replace(GREEDY, max_new_tokens=40)))
    start = 0
    for t in range(len(prompt), len(seq)):  # the token at t was predicted from seq[start:t]
        if t - start > block:
            start = t - block // 2  # the refill: the last block // 2 tokens
        expect = m(torch.tensor([seq[start:t]]))[0, -1].argmax()
        assert seq[t] == expect, (t, start)


def test_sampling_with_a_seed_is_reproducible_and_leaves_the_mode_as_it_was():
    m = model().train()
    cfg = SampleConfig(max_new_tokens=30, temperature=1.0, top_k=20, top_p=0.9)
    one = list(generate_ids(m, [1], replace(cfg, seed=1)))
    assert one == list(generate_ids(m, [1], replace(cfg, seed=1)))
    assert one != list(generate_ids(m, [1], replace(cfg, seed=2)))
    assert m.training  # in eval mode while it ran, in training mode again after


@pytest.mark.parametrize("greedy_draws", [True, False])
def test_unk_is_never_drawn_and_the_others_share_its_mass(greedy_draws):
    cfg = SampleConfig(max_new_tokens=200, temperature=0 if greedy_draws else 1.0, seed=0)
    free = list(generate_ids(favours_unk(), [1], cfg))
    banned = list(generate_ids(favours_unk(), [1], cfg, unk=0))
    allowed = list(generate_ids(favours_unk(), [1], replace(cfg, allow_unk=True), unk=0))
    assert free.count(0) > 150 and allowed.count(0) > 150  # the model wants <unk>
    assert 0 not in banned
    assert banned.count(7) > 100  # the next most likely token takes the lead


# ------------------------------------------------------------------ text


def test_generated_text_has_no_unk_unless_asked_for():
    tok = WordTokenizer([UNK, *(f" w{i}" for i in range(49))], space_prefix=True)
    cfg = SampleConfig(max_new_tokens=30, temperature=1.0, seed=0)
    text = "".join(stream_text(favours_unk(), tok, " w3", cfg))
    asked = "".join(stream_text(favours_unk(), tok, " w3", replace(cfg, allow_unk=True)))
    assert UNK not in text and text.count(" w6") > 15  # id 7 is " w6"
    assert asked.count(UNK) > 20


def test_the_stream_gives_whole_characters_and_closing_it_stops_the_generation():
    class Bytes:
        """A tokenizer whose ids are bytes: 'é' is two of them."""

        marks = False

        def decode(self, ids, before=""):
            return bytes(ids).decode("utf-8", errors="replace")

    drawn = []

    def ids():
        for b in "aé".encode():
            drawn.append(b)
            yield b
        drawn.append("never")
        yield 0

    pieces = decode_stream(Bytes(), ids())
    assert next(pieces) == "a" and next(pieces) == "é"  # not half of é
    pieces.close()
    assert "never" not in drawn


def test_generate_returns_the_text_its_ids_and_the_seed_that_gives_it_again():
    tok = WordTokenizer([UNK, *(f" w{i}" for i in range(49))], space_prefix=True)
    m = model()
    g = generate(m, tok, " w3", SampleConfig(max_new_tokens=20, temperature=1.0))
    assert g.text == tok.decode(g.ids) and len(g.ids) == 20 and str(g) == " w3" + g.text
    again = generate(m, tok, " w3", SampleConfig(max_new_tokens=20, temperature=1.0, seed=g.seed))
    assert again.text == g.text and g.copies is None  # no training text to look in


def test_the_showcase_setting_is_the_default_sampling_at_a_fixed_seed():
    assert (SHOWCASE.temperature, SHOWCASE.top_k) == (
        SampleConfig().temperature, SampleConfig().top_k)  # fmt: skip
    assert SHOWCASE.seed == 1


def test_printing_a_generation_shows_what_sample_shows(run, capsys):
    """``print(m.generate(...))``: the prompt, the text, and the copies line, as ``wordgpt
    sample`` writes them (its copies line on stderr)."""
    import wordgpt

    from .helpers import run_main

    g = wordgpt.load(run).generate("the knight", max_new_tokens=12, seed=5)
    assert str(g) == f"the knight{g.text}\n{g.copies.summary()}"
    r = run_main(["sample", run, "--prompt", "the knight", "--max-new-tokens", 12, "--seed", 5],
                 capsys)  # fmt: skip
    assert r.stdout == f"the knight{g.text}\n" and g.copies.summary() in r.stderr


def test_num_samples_writes_texts_seeds_one_apart(run, capsys):
    """nanoGPT's habit: ``--num-samples 3 --seed 5`` writes the texts of seeds 5, 6 and 7,
    each after a line of dashes."""
    from .helpers import run_main

    args = ["sample", run, "--prompt", "the", "--max-new-tokens", 8, "--no-copies"]
    three = run_main([*args, "--num-samples", 3, "--seed", 5], capsys).stdout.split("-" * 40 + "\n")
    assert len(three) == 3
    assert three[1] == run_main([*args, "--seed", 6], capsys).stdout
    assert three[0] != three[1]
