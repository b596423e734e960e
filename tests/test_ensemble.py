"""Ensembles: the members' probabilities averaged behind a GPT's calls (two identical members
score what one does; two different ones, the mean of their distributions), the KV cache, and a
run whose pass cap leaves budget for further members: their folders, loading, the report and
the export; the quality benchmark's ladder over such a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wordgpt.config import ModelConfig, SampleConfig
from wordgpt.model.ensemble import Ensemble
from wordgpt.model.gpt import GPT
from wordgpt.model.sampling import generate_ids
from wordgpt.use.evaluate import token_nll

from .helpers import load_benchmark

CFG = ModelConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=32, block_size=16, dropout=0.0)


def member(seed: int, cfg: ModelConfig = CFG) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg).eval()


def test_two_identical_members_score_what_one_does():
    one = member(0)
    two = Ensemble([one, member(0)])
    x = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(two(x), one(x).float().log_softmax(-1))
    data = np.random.default_rng(2).integers(0, 50, 200)
    np.testing.assert_allclose(token_nll(two, data, 16), token_nll(one, data, 16), atol=1e-5)


@pytest.mark.parametrize("head", ["softmax", "adaptive"])
def test_the_ensemble_is_the_mean_of_its_members_distributions(head):
    cfg = ModelConfig(**{**vars(CFG), "head": head, "cutoffs": (20,)})
    a, b, c = member(0, cfg), member(1, cfg), member(2, cfg)
    x = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(3))
    mean = sum(m(x).float().log_softmax(-1).exp() for m in (a, b, c)) / 3
    got = Ensemble([a, b, c])(x)
    torch.testing.assert_close(got.exp(), mean)
    y = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(4))
    want = -mean.log().gather(-1, y[..., None]).squeeze(-1).mean()
    torch.testing.assert_close(Ensemble([a, b, c])(x, y), want)


def test_generation_with_the_cache_equals_generation_without_it():
    ens = Ensemble([member(0), member(1)])
    greedy = SampleConfig(max_new_tokens=30, temperature=0)  # past the block: a refill
    cached = list(generate_ids(ens, [1, 2, 3], greedy))
    plain = list(generate_ids(ens, [1, 2, 3], SampleConfig(**{**vars(greedy), "use_cache": False})))
    assert cached == plain and len(cached) == 30
    assert cached != list(generate_ids(member(0), [1, 2, 3], greedy))  # not just the first


def test_members_of_other_shapes_are_refused():
    other = ModelConfig(**{**vars(CFG), "block_size": 8})
    with pytest.raises(ValueError, match="one vocabulary and block size"):
        Ensemble([member(0), member(1, other)])


# ------------------------------------------------------------------------ a run with members


@pytest.fixture(scope="module")
def ensemble_run(word_data, tmp_path_factory):
    """A tiny run capped at one pass with a minute's budget on a clock that runs slow (a
    millisecond a reading, whatever this machine's speed): the cap ends it early, and two
    further members train in the time left."""
    import itertools

    from wordgpt.use.train_run import train

    ticks = itertools.count()
    out = tmp_path_factory.mktemp("ensemble") / "run"
    r = train(word_data, out, preset="tiny", epochs=1.0, time_budget=60.0, max_iters=10_000,
              members=3, progress=False, tensorboard=False, dtype="fp32", report=False,
              clock=lambda: next(ticks) * 1e-3)  # fmt: skip
    return out, r


@pytest.mark.slow
def test_a_pass_cap_with_budget_left_trains_further_members(ensemble_run):
    import wordgpt

    run, result = ensemble_run
    assert result.stopped == "epochs"
    for k in (2, 3):
        cfg = json.loads((run / "members" / str(k) / "config.json").read_text())
        assert cfg["train"]["seed"] == 1337 + k - 1 and cfg["train"]["members"] == 1
        assert (run / "members" / str(k) / "best.pt").is_file()
    assert not (run / "members" / "4").exists()  # at most 3
    assert json.loads((run / "summary.json").read_text())["members"] == 3
    m = wordgpt.load(run, device="cpu")
    assert isinstance(m.gpt, Ensemble) and len(m.gpt.members) == 3
    assert "an ensemble of 3" in repr(m)
    first = wordgpt.load(run / "best.pt", device="cpu")
    alone = wordgpt.load(run, "last", device="cpu")  # last.pt: the first model alone
    assert not isinstance(alone.gpt, Ensemble)
    ens, one = m.evaluate(), first.evaluate()
    assert ens.bits_per_char < one.bits_per_char  # three seeds average better than one
    assert len(m.generate("the", max_new_tokens=5, seed=1).ids) == 5


@pytest.mark.slow
def test_the_report_and_the_export_say_what_they_hold(ensemble_run, tmp_path, capsys):
    import shutil

    import wordgpt
    from wordgpt.use.export import export, model_card
    from wordgpt.use.report import write_report

    run = tmp_path / "run"
    shutil.copytree(ensemble_run[0], run)
    write_report(run)
    assert "| ensemble | 3 models of this shape" in (run / "report.md").read_text()
    card = model_card(wordgpt.load(run, device="cpu"), "gpt2", "x")
    assert "not exported: the 2 further models of the run's ensemble" in card
    out = export(run, tmp_path / "hf")
    assert "an ensemble of 3 models; the export holds its first" in capsys.readouterr().out
    assert (out.out / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_member_stopped_before_its_end_is_left_out(ensemble_run, tmp_path):
    import shutil

    import wordgpt

    run = tmp_path / "run"
    shutil.copytree(ensemble_run[0], run)
    summary = run / "members" / "3" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "stopped": "signal 2"}))
    assert len(wordgpt.load(run, device="cpu").gpt.members) == 2


@pytest.mark.slow
def test_the_benchmark_ladder_adds_each_part_of_the_evaluation_in_turn(ensemble_run, tmp_path):
    """benchmarks/quality.py --ladder: each row is the evaluation with one more part than
    the row above, measured here by the API directly (the spelling without its lexicon by a
    character model built apart)."""
    import shutil

    import wordgpt
    from wordgpt.adapt_config import AdaptConfig
    from wordgpt.corpus.spelling import Spelling
    from wordgpt.corpus.tokenfiles import load_unk_words

    run = tmp_path / "run"
    shutil.copytree(ensemble_run[0], run)
    whole = wordgpt.load(run, device="cpu")
    whole.fit_partner(2)  # a partner, as a word recipe's run has
    rows = [bpc for _, bpc, _ in load_benchmark("quality").ladder(run)]

    first = wordgpt.load(run / "best.pt", device="cpu")  # the first model alone
    half = first.gpt.cfg.block_size // 2
    plain, tok = first.evaluate(ngram=0), first.tokenizer
    words = load_unk_words(first.config["data_dir"], "val")
    assert words and tok.lexicon_weight > 0
    spelled = Spelling(tok.itos[1:] + tok.rare).bits_many(words).sum()  # no lexicon
    no_lexicon = plain.bits_per_char + (spelled / plain.chars - plain.spell_bits_per_char)
    strided = first.evaluate(stride=half)
    ensemble = whole.evaluate(stride=half, adapt=AdaptConfig(), chars=True)
    expected = [
        no_lexicon,
        plain.bits_per_char,
        first.evaluate(stride=half, ngram=0).bits_per_char,
        strided.ngram["bits_per_char"],
        ensemble.ngram["bits_per_char"],
        ensemble.by_chars["bits_per_char"],
        ensemble.ngram["adaptive_bits_per_char"],
        ensemble.by_chars["adaptive_bits_per_char"],
    ]
    assert rows == pytest.approx(expected, rel=1e-9)
    assert len(set(np.round(rows, 9))) == 8  # every part changes the figure


def _stopped_while_members_trained(ensemble_run, tmp_path, gone: tuple[int, ...]):
    """A copy of the ensemble run as a kill -9 leaves it while member ``gone[0]`` trained:
    that member without its summary, the later ones never started, the run's summary without
    its member count and not complete."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ensemble_run[0], run)
    (run / "members" / str(gone[0]) / "summary.json").unlink()
    for k in gone[1:]:
        shutil.rmtree(run / "members" / str(k))
    summary = json.loads((run / "summary.json").read_text())
    assert summary.pop("complete") is True and summary.pop("members") == 3
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _resume(word_data, run):
    import itertools

    from wordgpt.use.train_run import train

    ticks = itertools.count()
    return train(word_data, run, resume=True, report=False, progress=False, tensorboard=False,
                 clock=lambda: next(ticks) * 1e-3)  # fmt: skip


@pytest.mark.slow
def test_resume_finishes_a_run_stopped_while_a_member_trained(ensemble_run, word_data, tmp_path):
    """The model made its passes, member 2 was done, member 3 was training when the run was
    killed: ``--resume`` (refused before: "already made 1.01 passes") resumes member 3 from
    its last.pt, leaves member 2 as it was, and completes the run; then it has nothing left."""
    from wordgpt.errors import WordGPTError

    run = _stopped_while_members_trained(ensemble_run, tmp_path, gone=(3,))
    second = (run / "members" / "2" / "best.pt").read_bytes()
    _resume(word_data, run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["members"] == 3 and summary["complete"] is True
    assert json.loads((run / "members" / "3" / "summary.json").read_text())["stopped"] == "epochs"
    assert (run / "members" / "2" / "best.pt").read_bytes() == second
    assert not (run / "members" / "4").exists()
    with pytest.raises(WordGPTError, match="already made 1.0\\d passes .* the run is complete"):
        _resume(word_data, run)


@pytest.mark.slow
def test_a_signal_while_a_member_trains_stops_the_run_for_a_resume(
    ensemble_run, word_data, tmp_path, monkeypatch
):
    """Ctrl-C while member 2 trains stops there (member 3 never starts), says where the last
    checkpoint is, and leaves the run incomplete: a resume goes on with it."""
    from dataclasses import replace

    from wordgpt.errors import InterruptError
    from wordgpt.use import train_run

    run = _stopped_while_members_trained(ensemble_run, tmp_path, gone=(2, 3))
    real = train_run.train_model

    def member_interrupted(p, budget, d):
        r = real(p, budget, d)
        return replace(r, stopped="signal 2") if "members" in str(p.run.path) else r

    monkeypatch.setattr(train_run, "train_model", member_interrupted)
    with pytest.raises(InterruptError, match=f"saved {run}/members/2/last.pt"):
        _resume(word_data, run)
    assert not (run / "members" / "3").exists()
    assert "complete" not in json.loads((run / "summary.json").read_text())


def test_a_distilled_student_learns_its_teachers_distribution():
    """benchmarks/distill.py: a student trained on the teacher's head distribution alone
    (alpha 1) comes far closer to it than one trained on the same tokens' cross-entropy, and
    the teacher's distribution is the members' mean."""
    distill = load_benchmark("distill")
    from wordgpt.config import OptimConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=32,
                      head="adaptive", cutoffs=[20, 40], dropout=0.0)  # fmt: skip
    members = [GPT(cfg).eval() for _ in range(2)]
    for m in members:  # a sharp distribution that the random tokens do not give
        m.lm_head.head.weight.data *= 30
    teacher = distill.Teacher(members)
    train = np.random.default_rng(0).integers(0, 50, 4000).astype(np.uint16)
    x = torch.from_numpy(train[:256].astype(np.int64)).view(16, 16)
    y = torch.from_numpy(train[1:257].astype(np.int64)).view(16, 16)
    target = teacher.head_logp(x, y)
    probs = []
    for m in members:
        hidden = distill.keep_hidden(m)
        m(x, y)
        probs.append(distill.head_logp(m, hidden["h"]).exp())
        assert torch.allclose(probs[-1].sum(1), torch.ones(256))
    torch.testing.assert_close(target.exp(), torch.stack(probs).mean(0))

    def kl(student) -> float:
        hidden = distill.keep_hidden(student)
        with torch.no_grad():
            student(x, y)
            logp = distill.head_logp(student, hidden["h"])
        return float(torch.nn.functional.kl_div(logp, target, log_target=True,
                                                reduction="batchmean"))  # fmt: skip

    optim = OptimConfig(lr=3e-3, warmup=0.05)
    run = dict(cfg=cfg, train=train, optim=optim, seconds=1e9, passes=20.0, batch_size=8, seed=1)
    taught, how = distill.distil(teacher, alpha=1.0, **run)
    alone, _ = distill.distil(teacher, alpha=0.0, **run)
    assert how["passes"] >= 20.0
    assert kl(taught) < 0.5 * kl(alone), (kl(taught), kl(alone))
