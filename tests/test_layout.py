"""The package's layout stays what docs/architecture.md says: stages that import only from
earlier stages, no import circles, no torch in the text stage, no two modules of one name,
procedures of at most 100 lines and classes of at most 200."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "src" / "wordgpt"

STAGES = {
    "core": 0,  # config, fields, settings, presets, errors, fileio, logs, figures
    "corpus": 1,  # text -> token files
    "vectors": 2,  # word vectors, on the side
    "model": 2,  # every model: the GPT, the n-gram model and its mixture, the ensemble, sampling
    "runs": 3,  # the run folder: what training writes and its uses read
    "training": 4,  # token files -> a run folder
    "use": 5,  # a run at work: the whole train command, generation, evaluation, report, serve
    "top": 6,  # the command line, the demo, the package's lazy names
}
TOP = {"cli", "demo", "__init__"}
MAX_FUNCTION, MAX_CLASS = 100, 200


def stage_of(module: str) -> str:
    """``wordgpt.corpus.sources`` -> corpus; ``wordgpt.config`` -> core; ``wordgpt.cli`` -> top."""
    parts = module.split(".")
    if len(parts) == 1:
        return "top"
    if parts[1] in STAGES:
        return parts[1]
    return "top" if parts[1] in TOP else "core"


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports_of(module: str, path: Path) -> set[str]:
    """Every wordgpt module that ``module`` imports, at any depth of its code (imports
    inside functions count too: a lazy import is still an arrow)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "wordgpt"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "wordgpt":
                continue
            known = modules()
            for a in node.names:  # `from . import x` imports the module x
                sub = f"{target}.{a.name}"
                found.add(sub if sub in known else target)
    return found - {module}


def third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


GRAPH = {m: imports_of(m, p) for m, p in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_from_its_own_or_earlier_stages(module):
    here = stage_of(module)
    for dep in GRAPH[module]:
        there = stage_of(dep)
        same = there == here
        assert same or STAGES[there] < STAGES[here], f"{module} ({here}) imports {dep} ({there})"


def test_there_are_no_import_circles():
    """Depth-first search over the import graph; a module met again on the path is a circle
    (a package's __init__ is left out: importing a submodule runs it, which is no arrow)."""
    graph = {m: {d for d in deps if d in GRAPH and d != "wordgpt"} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, m, d]))
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_no_two_modules_share_a_name():
    """A name says what a module is about: two modules of one name (corpus/copies.py and
    use/copies.py) make a reader open both."""
    names: dict[str, list[str]] = {}
    for m in modules():
        if m.split(".")[-1] not in ("__init__", "wordgpt"):
            names.setdefault(m.split(".")[-1], []).append(m)
    assert not {k: v for k, v in names.items() if len(v) > 1}


def test_train_reaches_its_first_step_through_four_files():
    """``wordgpt train`` -> use/train_run.py (the whole command) -> training/train.py (one
    model: set-up, loop, finish) -> training/trainer.py (the step): what the command does is
    read in those files, top to bottom."""
    src = (PKG / "cli" / "commands.py").read_text(encoding="utf-8")
    assert "from ..use.train_run import train as run" in src
    assert "wordgpt.training.train" in GRAPH["wordgpt.use.train_run"]
    assert "wordgpt.training.trainer" in GRAPH["wordgpt.training.train"]


def test_training_imports_nothing_from_the_stage_that_uses_a_run():
    for m, deps in GRAPH.items():
        if stage_of(m) in ("corpus", "model", "runs", "training"):
            assert not {d for d in deps if stage_of(d) in ("use", "top")}, m


def test_source_files_stay_readable_in_length():
    """No file under src/ past 450 lines, config.py included; training/train.py, the
    procedure a newcomer reads first, at most 300."""
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}  # fmt: skip
    assert not long, long
    assert len((PKG / "training" / "train.py").read_text().splitlines()) <= 300


def test_test_files_stay_under_500_lines():
    long = {p.name: n for p in (ROOT / "tests").rglob("test_*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}  # fmt: skip
    assert not long, long


@pytest.mark.parametrize("stage", ["corpus", "vectors"])
def test_the_text_and_vector_stages_never_import_torch(stage):
    for m, p in modules().items():
        if stage_of(m) == stage:
            assert "torch" not in third_party(p), m
    code = (
        f"import sys, pkgutil, importlib, wordgpt.{stage} as s\n"
        "for i in pkgutil.iter_modules(s.__path__):\n"
        "    importlib.import_module(f'{s.__name__}.{i.name}')\n"
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False", r.stderr


def test_the_model_knows_nothing_of_files_tokenizers_or_training():
    for m, deps in GRAPH.items():
        if stage_of(m) == "model":
            assert {stage_of(d) for d in deps} <= {"core", "model"}, (m, deps)


def lengths(root: Path):
    for p in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield p.relative_to(ROOT), node, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("root", ["src", "benchmarks", "tests"])
def test_functions_fit_on_a_screen_and_classes_stay_small(root):
    long = [
        f"{p}:{n.lineno} {n.name} ({k} lines)"
        for p, n, k in lengths(ROOT / root)
        if k > (MAX_CLASS if isinstance(n, ast.ClassDef) else MAX_FUNCTION)
    ]
    assert not long, long


@pytest.mark.slow
@pytest.mark.parametrize("strict, outcome", [("1", "failed"), ("0", "skipped")])
def test_a_missing_extra_fails_under_strict_and_skips_otherwise(tmp_path, strict, outcome):
    test = tmp_path / "test_missing.py"
    test.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from helpers import need\n\n"
        "def test_it():\n"
        "    need('wordgpt_no_such_extra')\n"
    )
    env = {**os.environ, "WORDGPT_STRICT": strict}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert f"1 {outcome}" in r.stdout, r.stdout


def test_no_source_file_is_ignored_by_git():
    """A source file that .gitignore hides works here and is missing from every clone."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", "src", "tests"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    hidden = [f for f in r.stdout.split() if f.endswith((".py", ".html", ".js", ".css", ".json"))]
    assert not hidden, hidden
