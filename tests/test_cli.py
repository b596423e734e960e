"""The commands a user types: prepare, train, sample, eval, and the Python API beside them."""

import json
import math
import subprocess
import sys

import pytest

import wordgpt
from wordgpt.cli import main
from wordgpt.corpus.tokenfiles import load_meta

from .conftest import SHORT_TEXT
from .helpers import ROOT, USER_PAGES, cli


@pytest.fixture(scope="module")
def run_dir(word_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    main(
        [
            "train",
            "--data",
            str(word_data),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--max-iters",
            "60",
            "--dtype",
            "fp32",
            "--no-progress",
        ]
    )
    return out


def test_sample_streams_text_and_is_reproducible_with_a_seed(run_dir):
    a = cli("sample", run_dir, "--prompt", "the knight", "--max-new-tokens", 30, "--seed", 7)
    b = cli("sample", run_dir, "--prompt", "the knight", "--max-new-tokens", 30, "--seed", 7)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("the knight")
    assert len(a.stdout) > len("the knight") + 10


def test_sample_without_a_prompt_starts_a_sentence(run_dir):
    from wordgpt.corpus.tokenizer import start_ids as default_context  # noqa: I001

    m = wordgpt.load(run_dir)
    start = default_context(m.tokenizer)
    assert start == m.tokenizer.encode(".") and 0 not in start  # after a full stop, not <unk>
    text = m.generate(max_new_tokens=40, seed=1).text
    assert text and not text[0].isspace()


def test_unknown_prompt_words_get_a_warning_not_an_error(run_dir):
    r = cli(
        "sample", run_dir, "--prompt", "the xylophone zyzzyva", "--max-new-tokens", 5, "--seed", 1
    )
    assert r.returncode == 0
    assert "warning: 2 prompt token(s) not in the vocabulary" in r.stderr
    assert "xylophone" in r.stderr and "Traceback" not in r.stderr


def test_top_k_1_equals_greedy_through_the_api(run_dir):
    m = wordgpt.load(run_dir)
    greedy = m.generate("the", max_new_tokens=25, temperature=0).text
    assert m.generate("the", max_new_tokens=25, top_k=1, seed=3).text == greedy
    assert m.generate("the", max_new_tokens=25, use_cache=False, temperature=0).text == greedy


def test_eval_prints_bits_per_char_and_json(run_dir, word_data, capsys):
    main(["eval", str(run_dir), "--json"])
    r = json.loads(capsys.readouterr().out)
    meta = load_meta(word_data)
    assert r["chars"] == meta["splits"]["val"]["chars"]
    assert r["tokens"] == meta["splits"]["val"]["tokens"] - 1  # every token but the first
    val = meta["splits"]["val"]
    assert r["bits_per_char"] == pytest.approx(
        (r["loss"] * r["tokens"] / math.log(2) + val["unk_spell_bits"]) / r["chars"], rel=1e-9
    )  # the model's bits, and the spelling of every <unk>
    assert r["unk_share"] == val["unk_share"] > 0
    assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    main(["eval", str(run_dir), "--split", "train"])
    assert "bits/char" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "{tmp}/nothing"], "is nothing (no such file or folder); give a run folder"),
        (["eval", "{tmp}/torn"], "corrupt or incomplete"),
        (["train", "--data", "{tmp}"], "give a folder written by `wordgpt prepare`"),
        (["sample", "{run}", "--temperature", "-1"], "temperature must be 0 (greedy) or between"),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/x", "--n-embd", "30", "--n-head", "4"],
            "multiple of n_head",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, run_dir, word_data, args, message):
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "best.pt").write_bytes((run_dir / "best.pt").read_bytes()[:5000])
    args = [a.format(tmp=tmp_path, run=run_dir, data=word_data) for a in args]
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_python_api_needs_no_cli(corpus_file, tmp_path):
    """prepare, train, load, generate and evaluate from Python alone, on BPE tokens: the
    trained model scores well below a uniform guess, and its text decodes to what it says."""
    p = wordgpt.prepare(
        tmp_path / "data", dataset=str(corpus_file), tokenizer="bpe", vocab_size=300
    )
    r = wordgpt.train(
        p.out, tmp_path / "run", preset="tiny", max_iters=80, progress=False, report=False
    )
    assert r.step == 80
    m = wordgpt.load(tmp_path / "run")
    text = m.generate("the", max_new_tokens=10, seed=0).text
    assert text and m.tokenizer.decode(m.tokenizer.encode(text)) == text
    e = m.evaluate("val")
    uniform = math.log2(p.tokenizer.vocab_size) * e.tokens / e.chars
    assert e.bits_per_char < 0.7 * uniform, (e.bits_per_char, uniform)


@pytest.mark.slow
def test_wikipedia_sample_end_to_end(tmp_path):
    data = tmp_path / "wiki"
    main(["prepare", "--dataset", "wikipedia-sample", "--out", str(data)])
    main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--preset",
            "tiny",
            "--max-iters",
            "120",
            "--no-progress",
            "--no-report",
        ]
    )
    m = wordgpt.load(tmp_path / "run")
    meta = load_meta(data)
    V, val = meta["vocab_size"], meta["splits"]["val"]
    # what an untrained model scores: a uniform guess of each token, and each <unk> spelled
    uniform = ((val["tokens"] - 1) * math.log2(V) + val["unk_spell_bits"]) / val["chars"]
    assert m.evaluate().bits_per_char < 0.75 * uniform
    assert m.generate("the", max_new_tokens=10, seed=0).text


def test_a_script_without_a_main_guard_prepares_with_workers_and_ends(tmp_path):
    """Worker processes re-run the main module of the process that starts them; wordgpt's
    must not run a user's unguarded script again (it would prepare again in each worker)."""
    (tmp_path / "book.txt").write_text(SHORT_TEXT * 50)
    script = tmp_path / "api.py"
    script.write_text(
        "import wordgpt\n"
        f"p = wordgpt.prepare('d', dataset={str(tmp_path / 'book.txt')!r}, workers=2,\n"
        "                    progress=False)\n"
        "print('prepared', p.meta['vocab_size'])\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0 and r.stdout.count("prepared") == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_the_readmes_python_example_runs_as_a_script(tmp_path):
    """The README's Python API block, saved as a file and run with ``python`` (its budget
    cut to 20 s), ends by itself with exit code 0."""
    import re

    from .conftest import book_path

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Python API\n.*?```python\n(.*?)```", readme, re.S)
    assert block, "the README has a Python API section with a python block"
    code = re.sub(r"time_budget=\d+", "time_budget=20", block.group(1))
    if book_path() is None:
        pytest.skip("the example prepares Don Quixote: set WORDGPT_DATA_DIR")
    (tmp_path / "example.py").write_text(code)
    r = subprocess.run([sys.executable, "example.py"], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bits" in r.stdout or re.search(r"\d\.\d{3}", r.stdout), r.stdout[-2000:]


def test_every_option_shows_at_most_one_default():
    """A flag's help names its default once: either click's or the text's own `[default: ...]`."""
    import click

    from wordgpt.cli import cli

    def walk(command, ctx):
        for p in command.params:
            record = p.get_help_record(ctx)
            if record:
                yield ctx.command_path, record
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))

    seen = list(walk(cli, click.Context(cli, info_name="wordgpt", **cli.context_settings)))
    assert any("[default: a new sentence]" in r[1] for _, r in seen)
    for where, record in seen:
        assert record[1].count("[default:") <= 1, f"{where}: {record}"


def test_the_python_api_explains_itself(run_dir, tmp_path, capsys):
    """What a user exploring the package sees: the verbs in dir(), train's own parameters,
    and one readable line for a model and for prepared data (never a torch module dump)."""
    import inspect

    import wordgpt

    names = dir(wordgpt)
    assert {"prepare", "train", "load", "Model", "TrainConfig"} <= set(names)
    assert not {"Any", "Path", "annotations", "importlib", "TYPE_CHECKING"} & set(names)
    params = inspect.signature(wordgpt.train).parameters
    assert {"data_dir", "out", "preset", "resume", "overwrite"} <= set(params)
    assert not any(p.kind is p.VAR_POSITIONAL for p in params.values())
    m = wordgpt.load(run_dir)
    line = repr(m)
    assert "\n" not in line and "parameters" in line and str(run_dir) in line, line
    assert f"step {m.step}" in line and "Linear" not in line
    (tmp_path / "book.txt").write_text(SHORT_TEXT * 20)
    p = wordgpt.prepare(tmp_path / "data", dataset=str(tmp_path / "book.txt"))
    said = capsys.readouterr()
    assert "vocabulary" in said.out + said.err  # prepare says what it wrote
    assert "vocabulary" in repr(p) and str(p.out) in repr(p)


def documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``wordgpt ...`` command in a code block of the README and the docs (also as
    ``.venv/bin/wordgpt`` or ``python -m wordgpt.cli``), as (file, arguments)."""
    import re
    import shlex

    found = []
    for md in USER_PAGES:
        text = md.read_text(encoding="utf-8")
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                m = re.match(r"(?:\S*/)?wordgpt\s+(.*)|.*-m wordgpt\.cli\s+(.*)", line)
                if m:
                    command = re.split(r"\s(?:\||&&|;|>|2>)\s", m.group(1) or m.group(2))[0]
                    found.append((md.name, shlex.split(command, comments=True)))
    return found


def test_every_documented_command_parses(monkeypatch):
    """The docs cannot drift from the CLI: each documented command's options and values are
    accepted by the command it names (paths are not checked: they are the reader's)."""
    import click

    from wordgpt.cli import cli

    def commands(group):
        for sub in getattr(group, "commands", {}).values():
            yield sub
            yield from commands(sub)

    for command in [cli, *commands(cli)]:
        for p in command.params:
            if type(p.type).__module__.startswith("wordgpt"):
                monkeypatch.setattr(p, "type", click.STRING)
    found = documented_commands()
    assert len(found) >= 20 and {a[0] for _, a in found} >= {"prepare", "train", "sample"}
    for where, args in found:
        ctx = cli.make_context("wordgpt", list(args), resilient_parsing=False)
        while isinstance(ctx.command, click.Group) and (ctx.protected_args or ctx.args):
            name, sub, rest = ctx.command.resolve_command(ctx, [*ctx.protected_args, *ctx.args])
            try:
                ctx = sub.make_context(name, rest, parent=ctx)
            except click.UsageError as e:
                raise AssertionError(f"{where}: wordgpt {' '.join(args)}: {e}") from None
