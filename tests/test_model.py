import math
from dataclasses import fields, replace

import pytest
import torch
import torch.nn.functional as F

from tests.reference_model import ReferenceGPT, load_from_gpt
from wordgpt.config import ModelConfig
from wordgpt.errors import WordGPTError
from wordgpt.model.gpt import GPT, estimate_flops
from wordgpt.presets import NOTEBOOK_MODEL

VARIANTS = {
    "plain": {},
    "recommended": {
        **{f.name: f.default for f in fields(ModelConfig)},
        "cutoffs": (8, 24),
        "vocab_size": 50,
        "dropout": 0.0,
        "attn_dropout": 0.0,
        "zero_init_proj": False,
        "n_layer": 2,
        "n_head": 2,
        "n_embd": 16,
        "block_size": 16,
    },  # fmt: skip
    "post-norm": {"norm": "post"},
    "rope": {"pos": "rope"},
    "tied": {"tie_weights": True},
    "adaptive": {"head": "adaptive", "cutoffs": (8, 24)},
    "no-bias": {"bias": False},
}


def tiny(**kw) -> ModelConfig:
    """A tiny model of the original notebook's kind (learned positions, ReLU, full softmax);
    ``kw`` changes it (the ``recommended`` variant: the defaults' parts at this size)."""
    base = {**NOTEBOOK_MODEL, "vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2,
            "n_embd": 16, "dropout": 0.0}  # fmt: skip
    return ModelConfig(**{**base, **kw})


def model(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(tiny(**kw)).eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes(variant):
    m = model(**VARIANTS[variant])
    idx = torch.randint(50, (3, 10))
    assert m(idx).shape == (3, 10, 50)
    loss = m(idx, idx)
    assert loss.shape == () and loss.item() > 0
    assert m(idx, idx, reduction="none").shape == (30,)


@pytest.mark.parametrize("variant", VARIANTS)
def test_changing_a_future_token_leaves_past_logits_unchanged(variant):
    m = model(**VARIANTS[variant])
    idx = torch.randint(50, (1, 12))
    before = m(idx)
    t = 7
    idx2 = idx.clone()
    idx2[0, t + 1 :] = (idx2[0, t + 1 :] + 1) % 50
    after = m(idx2)
    assert torch.equal(before[:, : t + 1], after[:, : t + 1])
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_gives_the_same_logits_as_full_recomputation(variant):
    m = model(**VARIANTS[variant])
    idx = torch.randint(50, (2, 16))
    full = m(idx)
    cache = m.new_cache(2)
    parts = [m(idx[:, :5], cache=cache, pos=0)]  # prefill
    parts.append(m(idx[:, 5:9], cache=cache, pos=5))  # several new positions at once
    parts += [m(idx[:, t : t + 1], cache=cache, pos=t) for t in range(9, 16)]  # one at a time
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_attention_dropout_is_its_own_setting():
    idx = torch.randint(50, (2, 12))
    plain = model(dropout=0.0, attn_dropout=0.0).train()
    assert torch.equal(plain(idx), plain(idx))  # no dropout anywhere: deterministic
    attn = model(dropout=0.0, attn_dropout=0.5).train()
    assert not torch.equal(attn(idx), attn(idx))
    assert torch.equal(attn.eval()(idx), attn(idx))  # off in eval mode


def test_positions_past_the_block_are_refused():
    m = model()
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_n_embd_must_divide_by_n_head():
    with pytest.raises(WordGPTError, match="multiple of n_head"):
        tiny(n_embd=30, n_head=4)


def test_weight_tying_shares_one_tensor_counted_once():
    tied, untied = model(tie_weights=True), model()
    assert tied.lm_head.weight is tied.wte.weight
    assert untied.lm_head.weight is not untied.wte.weight
    assert untied.num_params() - tied.num_params() == 50 * 16
    sd = tied.state_dict()
    assert sd["lm_head.weight"].data_ptr() == sd["wte.weight"].data_ptr()


def test_parameter_count_of_the_seed_preset():
    from wordgpt.presets import preset_configs

    cfg = preset_configs("seed")[0]
    n = GPT(replace(cfg, vocab_size=14_627)).num_params()
    # 32 blocks of 12*C^2 + 13*C, embeddings and a biased head: the notebook's ~116 M
    C, V, T = 512, 14_627, 128
    assert n == 32 * (12 * C * C + 13 * C) + V * C + T * C + 2 * C + C * V + V
    assert 115e6 < n < 117e6


def test_residual_projections_have_scaled_init():
    m = GPT(tiny(n_layer=8, n_embd=64, vocab_size=100))
    std = m.h[0].attn.proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.002
    assert abs(m.h[0].attn.qkv.weight.std().item() - 0.02) < 0.002
    assert m.h[0].attn.qkv.bias.abs().sum() == 0


def test_fused_attention_equals_the_per_head_reference():
    torch.manual_seed(0)
    cfg = tiny(n_head=4, n_embd=32)
    gpt = GPT(cfg).eval()
    ref = load_from_gpt(ReferenceGPT(cfg), gpt).eval()
    idx = torch.randint(50, (3, 16))
    torch.testing.assert_close(gpt(idx), ref(idx), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpt(idx, idx), ref(idx, idx), atol=1e-5, rtol=1e-5)


def test_adaptive_head_is_a_distribution_and_its_loss_matches_it():
    m = model(head="adaptive", cutoffs=(8, 24))
    idx = torch.randint(50, (2, 12))
    logp = m(idx)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 12), atol=1e-5, rtol=0)
    ce = F.cross_entropy(logp.view(-1, 50), idx.view(-1))
    torch.testing.assert_close(m(idx, idx), ce, atol=1e-5, rtol=1e-5)


def test_adaptive_head_without_clusters_is_the_full_softmax():
    torch.manual_seed(0)
    a = GPT(tiny(head="adaptive", cutoffs=(50, 80)))  # no cutoff below the vocabulary size
    torch.manual_seed(0)
    s = GPT(tiny(head="softmax"))
    assert isinstance(a.lm_head, torch.nn.Linear)
    idx = torch.randint(50, (2, 12))
    torch.testing.assert_close(a(idx, idx), s(idx, idx))


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_both_norm_placements_train(norm):
    torch.manual_seed(0)
    m = GPT(tiny(norm=norm))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    idx = torch.arange(16).repeat(4, 2)[:, :17] % 50
    first = None
    for _ in range(60):
        loss = m(idx[:, :-1], idx[:, 1:])
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_a_tiny_model_overfits_a_short_text():
    torch.manual_seed(0)
    data = torch.randint(30, (1, 33))  # 33 random tokens: only memorisation can predict them
    m = GPT(tiny(vocab_size=30, block_size=32, n_embd=64, n_head=4))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(300):
        loss = m(data[:, :-1], data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


# ------------------------------------------------------------------ rotary positions


def test_rope_scores_depend_only_on_relative_positions():
    """q.k after rotation at positions (m, n) equals the same at (m + s, n + s)."""
    from wordgpt.model.gpt import apply_rope, rope_tables

    cos, sin = rope_tables(64, 8)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)

    def score(m, n):
        qm = apply_rope(q, cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k, cos[n : n + 1], sin[n : n + 1])
        return float((qm * kn).sum())

    for m, n, s in [(5, 2, 10), (9, 9, 30), (3, 0, 50)]:
        assert score(m, n) == pytest.approx(score(m + s, n + s), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)  # it does depend on m - n


def test_a_rope_model_gives_the_same_logits_for_a_shifted_sequence():
    """Shift the whole sequence along the positions: with rotary positions nothing changes;
    with learned absolute positions it does (the negative control)."""
    idx = torch.randint(50, (2, 8))
    rope = model(pos="rope")
    torch.testing.assert_close(rope(idx, pos=0), rope(idx, pos=6), atol=1e-5, rtol=1e-5)
    learned = model()
    assert not torch.allclose(learned(idx, pos=0), learned(idx, pos=6), atol=1e-3)


def test_estimated_parameter_count_is_exact():
    from wordgpt.model.gpt import estimate_params

    for kw in [
        {},
        {"tie_weights": True},
        {"head": "adaptive", "cutoffs": (8, 24)},
        {"bias": False, "head_bias": False, "pos": "rope"},
    ]:
        cfg = tiny(**kw)
        assert estimate_params(cfg) == GPT(cfg).num_params(), kw


# ------------------------------------------------------------------ quality levers


def test_qk_norm_normalises_queries_and_keys():
    """With qk_norm, scaling the qkv projection's query and key rows changes nothing."""
    m = model(qk_norm=True)
    idx = torch.randint(50, (2, 10))
    before = m(idx)
    with torch.no_grad():
        for block in m.h:
            C = m.cfg.n_embd
            block.attn.qkv.weight[: 2 * C] *= 7.0  # the q and k rows
            if block.attn.qkv.bias is not None:
                block.attn.qkv.bias[: 2 * C] *= 7.0
    torch.testing.assert_close(m(idx), before, atol=1e-4, rtol=1e-4)
    plain = model()
    b0 = plain(idx)
    with torch.no_grad():
        plain.h[0].attn.qkv.weight[: 2 * plain.cfg.n_embd] *= 7.0
    assert not torch.allclose(plain(idx), b0, atol=1e-3)


def test_relu2_squares_the_activation():
    from wordgpt.model.gpt import MLP

    torch.manual_seed(0)
    a, b = MLP(tiny()), MLP(tiny(mlp="relu2"))
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 5, 16)
    expect = b.proj(torch.relu(b.fc(x)).square())
    torch.testing.assert_close(b(x), expect)
    assert not torch.allclose(a(x), b(x))


def test_zero_initialised_projections_make_every_block_the_identity():
    m = model(zero_init_proj=True)
    assert all(
        b.attn.proj.weight.abs().sum() == 0 and b.mlp.proj.weight.abs().sum() == 0 for b in m.h
    )
    x = torch.randn(1, 6, 16)
    torch.testing.assert_close(m.h[1](x)[0], x)


def test_logit_softcap_bounds_the_logits():
    m = model(logit_softcap=2.0)
    with torch.no_grad():
        m.lm_head.weight.mul_(1000)
    logits = m(torch.randint(50, (1, 8)))
    assert logits.abs().max() <= 2.0 and logits.abs().max() > 1.9


def test_value_residual_mixes_the_first_layers_values():
    m = model(value_residual=True)
    assert m.h[0].attn.value_lambda is None and m.h[1].attn.value_lambda.item() == 0.5
    idx = torch.randint(50, (1, 8))
    before = m(idx)
    with torch.no_grad():
        m.h[1].attn.value_lambda.fill_(1.0)  # lam = 1: the layer's own values only
    plain = GPT(tiny())
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if "value_lambda" not in k})
    torch.testing.assert_close(m(idx), plain.eval()(idx))
    assert not torch.allclose(before, plain(idx), atol=1e-5)


def test_the_levers_keep_the_cache_exact():
    m = model(qk_norm=True, value_residual=True, mlp="relu2", pos="rope", logit_softcap=5.0)
    idx = torch.randint(50, (2, 16))
    full = m(idx)
    cache = m.new_cache(2)
    parts = [m(idx[:, :6], cache=cache, pos=0)]
    parts += [m(idx[:, t : t + 1], cache=cache, pos=t) for t in range(6, 16)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_flops_per_token_match_what_pytorch_counts(pos):
    """6 per weight of every matrix plus 12 L C T for attention (nanoGPT's estimate) against
    PyTorch's own count of one forward and backward pass: the matrices exactly (PyTorch's
    counter has no formula for the CPU's fused attention kernel), or all within 5 %."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ModelConfig(vocab_size=500, block_size=32, n_layer=2, n_head=2, n_embd=64, pos=pos)
    model = GPT(cfg)
    x = torch.randint(500, (3, 32))
    with FlopCounterMode(display=False) as fc:
        model(x, x).backward()
    counted, total = fc.get_total_flops() / x.numel(), estimate_flops(cfg)
    matrices = total - 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
    assert counted == pytest.approx(matrices, rel=1e-9) or counted == pytest.approx(total, rel=0.05)
