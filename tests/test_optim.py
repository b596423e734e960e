"""The optimisers (training/optim.py): weight decay on matrices only, Muon's orthogonalised
updates and its momentum warm-up, learning-rate scales per group, and the EMA of the weights."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from wordgpt.config import ModelConfig, OptimConfig
from wordgpt.model.gpt import GPT
from wordgpt.training import optim
from wordgpt.training.optim import Muon, build_optimizer, param_groups

from .helpers import TINY_MODEL, make_trainer


def small(**kw) -> ModelConfig:
    """A one-layer model of the original notebook's kind (learned positions, full softmax)."""
    return ModelConfig(**{**TINY_MODEL, "vocab_size": 50, "block_size": 8, "n_layer": 1,
                          "n_embd": 8, **kw})  # fmt: skip


def test_weight_decay_falls_on_linear_matrices_only():
    m = GPT(small())
    decay, rest = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == [
        "h.0.attn.proj.weight",
        "h.0.attn.qkv.weight",
        "h.0.mlp.fc.weight",
        "h.0.mlp.proj.weight",
        "lm_head.weight",
    ]
    assert {"wte.weight", "wpe.weight", "ln_f.weight", "lm_head.bias"} <= {
        names[id(p)] for p in rest["params"]
    }
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    tied = GPT(small(tie_weights=True))
    decay, rest = param_groups(tied, 0.1)
    assert all(p is not tied.wte.weight for p in decay["params"])  # the embedding: no decay
    assert len(decay["params"]) + len(rest["params"]) == len(list(tied.parameters()))


def test_the_adaptive_heads_matrices_are_decayed_too():
    m = GPT(small(n_embd=32, head="adaptive", cutoffs=(10, 30)))
    decay, _ = param_groups(m, 0.1)
    head = {id(p) for p in m.lm_head.parameters()}
    assert head and head <= {id(p) for p in decay["params"]}


def test_muon_orthogonalises_the_update_of_the_blocks_matrices(word_data):
    """Muon's step on a matrix is (a scaled) orthogonalised momentum: its singular values are
    all close to one value, unlike the raw gradient's. AdamW still moves the embeddings."""
    t = make_trainer(
        word_data,
        optimizer="muon",
        lr=1e-2,
        weight_decay=0.0,
        muon_momentum=0.95,
        muon_warmup=0.0,
    )
    assert set(t.opt.opts) == {"muon", "adamw"}
    w = t.model.h[0].mlp.fc.weight
    muon_params = {id(p) for g in t.opt.opts["muon"].param_groups for p in g["params"]}
    assert id(w) in muon_params and id(t.model.wte.weight) not in muon_params
    before, emb = w.detach().clone(), t.model.wte.weight.detach().clone()
    t.accumulate()
    grad = w.grad.detach().clone()
    grad_sv = torch.linalg.svdvals(grad)
    t.state.step = 0
    t.opt.zero_grad()
    t.train_step()
    update = before - w.detach()
    U, _, Vh = torch.linalg.svd(grad, full_matrices=False)
    polar = U @ Vh  # the orthogonal matrix nearest to the gradient's direction

    def cos(a, b):
        return float((a * b).sum() / (a.norm() * b.norm()))

    assert cos(update, polar) > 0.95  # the step is the orthogonalised gradient...
    assert cos(update, grad) < cos(update, polar) - 0.15  # ...not the gradient itself
    sv = torch.linalg.svdvals(update)
    assert sv[: len(sv) * 9 // 10].max() / sv[: len(sv) * 9 // 10].min() < 2.0
    assert (grad_sv.max() / grad_sv.min()) > 5
    assert not torch.equal(t.model.wte.weight, emb)


@pytest.mark.parametrize("nesterov, adjust", [(True, "match_rms_adamw"), (False, None)])
def test_muon_in_float32_steps_as_torchs_muon(nesterov, adjust):
    """The float32 Newton-Schulz (a CPU without native bfloat16) moves every matrix, wide and
    tall, as torch's bfloat16 one does, to bfloat16's precision, over steps that use the
    momentum; its state is torch's, so a checkpoint of either resumes in the other."""

    def params():
        torch.manual_seed(0)
        return [torch.nn.Parameter(torch.randn(*s)) for s in ((32, 32), (64, 32), (32, 64))]

    shapes = [p.shape for p in params()]
    grads = [[torch.randn(s) for s in shapes] for _ in range(3)]  # three steps, unlike
    kw = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.5, "nesterov": nesterov,
          "adjust_lr_fn": adjust}  # fmt: skip
    moved = {}
    for kind, make in (
        ("torch", torch.optim.Muon),
        ("fp32", partial(Muon, ns_dtype=torch.float32)),
    ):
        ps = params()
        opt = make(ps, **kw)
        for step in grads:
            for p, g in zip(ps, step, strict=True):
                p.grad = g.clone()
            opt.step()
        moved[kind] = [p.detach() - p0 for p, p0 in zip(ps, params(), strict=True)]
        state = opt.state_dict()["state"]
        assert set(state) == {0, 1, 2}
        assert all(set(v) == {"momentum_buffer"} for v in state.values())
    for a, b in zip(moved["fp32"], moved["torch"], strict=True):
        assert (a - b).norm() < 0.03 * b.norm()
    torch.optim.Muon(params(), **kw).load_state_dict(opt.state_dict())


def test_muon_runs_in_float32_where_the_cpu_lacks_bfloat16(monkeypatch):
    model = GPT(small())
    for native, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(optim, "native_bf16", lambda native=native: native)
        opts = build_optimizer(model, OptimConfig(optimizer="muon"), torch.device("cpu")).opts
        assert opts["muon"].ns_dtype == dtype


def test_muons_momentum_warms_up(word_data):
    """Over the first 20 % of a 50-step run: 10 steps."""
    t = make_trainer(word_data, optimizer="muon", muon_momentum=0.95, muon_warmup=0.2)
    seen = []
    for _ in range(12):
        t.train_step()
        seen.append(t.opt.opts["muon"].param_groups[0]["momentum"])
    assert seen[0] == pytest.approx(0.86) and seen[4] == pytest.approx(0.90)
    assert seen[9] == seen[11] == pytest.approx(0.95)


def test_learning_rate_scales_reach_their_groups(word_data):
    t = make_trainer(
        word_data, lr=1.0, embed_lr_scale=0.5, head_lr_scale=2.0, warmup=0.0, min_lr_ratio=1.0
    )
    t.train_step()
    by_param = {id(p): g["lr"] for g in t.opt.param_groups for p in g["params"]}
    assert by_param[id(t.model.wte.weight)] == 0.5
    assert by_param[id(t.model.lm_head.weight)] == 2.0
    assert by_param[id(t.model.h[0].attn.qkv.weight)] == 1.0


def test_ema_weights_are_the_average_they_claim(word_data):
    t = make_trainer(word_data, ema=0.9)
    w = t.model.h[0].attn.qkv.weight
    expect = w.detach().clone()
    for i in range(15):
        t.train_step()
        d = min(0.9, (1 + i) / (10 + i))
        expect = d * expect + (1 - d) * w.detach()
    torch.testing.assert_close(t.ema.model.h[0].attn.qkv.weight, expect, rtol=1e-5, atol=1e-7)
    assert not torch.equal(t.ema.model.h[0].attn.qkv.weight, w)
    sd = t.state_dict()  # the model saved is the average; the trained weights travel too
    assert torch.equal(sd["model"]["h.0.attn.qkv.weight"], t.ema.model.h[0].attn.qkv.weight)
    assert torch.equal(sd["train_model"]["h.0.attn.qkv.weight"], w)
    u = make_trainer(word_data, ema=0.9)
    u.load_state_dict(sd)
    assert torch.equal(u.model.h[0].attn.qkv.weight, w) and u.ema.updates == 15
