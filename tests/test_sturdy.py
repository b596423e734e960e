"""Sturdy edges: one test per finding of the issue "no code from vector files, a local server
that only its user can drive, no folder lost" (test_N_... for finding N), each of which
failed on the code before it."""

from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wordgpt.config import DataConfig
from wordgpt.corpus.build import prepare
from wordgpt.errors import WordGPTError
from wordgpt.runs import checkpoint
from wordgpt.training.train import train
from wordgpt.vectors.files import keyed_vectors, save_vectors

from .helpers import cli, need, one_line_error, wait_for

QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def run(word_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sturdy") / "s1"
    train(word_data, out, preset="tiny", max_iters=20, eval_interval=10, **QUIET)
    return out


class Evil:
    """A pickle that, when loaded, creates a file: proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def evil_kv(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.kv"
    path.write_bytes(pickle.dumps(Evil(marker)))
    return path, marker


# ------------------------------------------------------------------ 1. no code from a .kv


def test_1_a_kv_file_runs_no_code_from_the_cli(evil_kv, word_data, tmp_path):
    path, marker = evil_kv
    err = one_line_error(cli("embed", "neighbors", path, "knight"))
    assert "pickle" in err and "--trust-pickle" in err
    args = ["--preset", "tiny", "--no-progress", "--init-embeddings", path]
    err = one_line_error(cli("train", "--data", word_data, "--out", tmp_path / "r", *args))
    assert "--trust-pickle" in err and not marker.exists()
    with pytest.raises(WordGPTError, match="trust_pickle"):
        train(word_data, tmp_path / "r2", preset="tiny", init_embeddings=str(path), **QUIET)
    assert not marker.exists()


def test_1_a_trusted_kv_loads_and_a_foreign_one_is_one_line(word_data, tmp_path):
    kv = keyed_vectors(["knight", "sancho", "horse"], np.eye(3, dtype=np.float32))
    save_vectors(kv, tmp_path / "ok.kv")
    r = cli("embed", "neighbors", tmp_path / "ok.kv", "knight", "-n", "1", "--trust-pickle")
    assert r.returncode == 0, r.stderr
    (tmp_path / "junk.kv").write_bytes(b"not a pickle at all" * 10)
    assert "not a gensim .kv" in one_line_error(
        cli("embed", "neighbors", tmp_path / "junk.kv", "x", "--trust-pickle")
    )


def test_1_the_server_never_loads_a_pickle_nor_a_path_a_config_names(evil_kv, run, tmp_path):
    need("fastapi")
    from fastapi.testclient import TestClient

    from wordgpt.use.serve.app import ServeConfig, create_app

    path, marker = evil_kv
    runs = tmp_path / "srv"
    shutil.copytree(run, runs / "s1")
    shutil.copy(path, runs / "s1" / "vectors.kv")
    cfg = json.loads((runs / "s1" / "config.json").read_text())
    cfg["train"]["init_embeddings"] = str(path)
    (runs / "s1" / "config.json").write_text(json.dumps(cfg))
    c = TestClient(create_app(ServeConfig(runs)), base_url="http://localhost")
    for route in ("/api/words/neighbors", "/api/words/map"):
        r = c.post(route, json={"run": "s1", "source": "vectors", "query": "knight"})
        assert r.status_code == 422 and ".npz" in r.json()["detail"]
    assert c.get("/api/runs").json()[0]["has_vectors"] is False
    assert not marker.exists()


# ------------------------------------------------------------------ 2. its user only


@pytest.fixture
def srv(run, tmp_path):
    need("fastapi")
    from fastapi.testclient import TestClient

    from wordgpt.use.serve.app import ServeConfig, create_app

    root = tmp_path / "srv"
    shutil.copytree(run, root / "s1")

    def make(**kw):
        return TestClient(create_app(ServeConfig(root, **kw)), base_url="http://127.0.0.1:8000")

    return root, make


def test_2_another_host_or_another_sites_page_gets_no_answer(srv):
    """Browser-free: what a rebinding attack (another Host) and a page of another origin
    send, and what a plain cross-site form can send (no JSON)."""
    root, make = srv
    c = make()
    assert c.get("/api/runs").status_code == 200
    assert c.get("/api/runs", headers={"Host": "evil.example"}).status_code == 421
    assert c.get("/api/runs", headers={"Host": "localhost:8000"}).status_code == 200
    gen = {"run": "s1", "max_new_tokens": 2}
    r = c.post("/api/generate", json=gen, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = c.post("/api/generate", content=json.dumps(gen), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert (
        c.post("/api/generate", json=gen, headers={"Origin": "http://127.0.0.1:8000"}).status_code
        == 200
    )
    done = len(c.app.state.wordgpt.finished)
    assert c.get("/api/runs/s1/samples?n=5&tokens=200").status_code in (404, 405, 422)
    assert len(c.app.state.wordgpt.finished) == done  # a GET made nothing run
    allowed = make(allowed_hosts=("mybox",))
    assert allowed.get("/api/runs", headers={"Host": "mybox:8000"}).status_code == 200


def test_2_a_link_in_a_run_folder_is_never_followed(srv, tmp_path):
    root, make = srv
    secret = tmp_path / "secret.txt"
    secret.write_text("the contents of /etc/passwd")
    (root / "s1" / "loss.png").unlink()
    (root / "s1" / "loss.png").symlink_to(secret)
    r = make().get("/api/runs/s1/loss.png")
    assert r.status_code == 404 and b"passwd" not in r.content


def test_2_every_costly_route_is_bounded_by_max_active(srv):
    root, make = srv
    c = make(max_active=1)
    s = c.app.state.wordgpt
    s.take_slot()  # one costly request is running
    try:
        for route, body in [
            ("/api/samples", {"run": "s1"}),
            ("/api/words/neighbors", {"run": "s1", "query": "the"}),
            ("/api/words/map", {"run": "s1"}),
            ("/api/generate", {"run": "s1"}),
        ]:
            r = c.post(route, json=body)
            assert r.status_code == 503 and "busy" in r.json()["detail"], route
    finally:
        s.release_slot()
    assert c.post("/api/samples", json={"run": "s1", "n": 1, "tokens": 3}).status_code == 200
    assert s.active == 0


# ------------------------------------------------------------------ 3. slots always released


def test_3_a_lone_surrogate_or_a_bad_number_is_a_422_and_leaks_no_slot(srv):
    root, make = srv
    c = make(max_active=1)
    for raw in (
        '{"run": "s1", "prompt": "\\ud800"}',
        '{"run": "s1", "temperature": NaN}',
        '{"run": "s1", "max_new_tokens": 1e400}',
        '{"run": "s1", "top_p": Infinity}',
    ):
        for _ in range(2):
            r = c.post("/api/generate", content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (raw, r.status_code, r.text)
            assert isinstance(r.json()["detail"], str) and ":" in r.json()["detail"]
    assert c.app.state.wordgpt.active == 0
    r = c.post("/api/generate", json={"run": "s1", "max_new_tokens": 3})  # the one slot is free
    assert r.status_code == 200 and "event: done" in r.text


def test_3_a_send_that_fails_releases_the_slot_at_once(srv):
    """The stream's generator is closed when the response ends however it ends: here the
    client's send breaks after the first event."""
    import asyncio

    from wordgpt.use.serve.app import create_app
    from wordgpt.use.serve.state import ServeConfig

    root, _ = srv
    app = create_app(ServeConfig(root, max_active=1))
    body = json.dumps({"run": "s1", "max_new_tokens": 50}).encode()
    sent, incoming = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # the client never says it left: its send fails instead

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and len(sent) > 2:
            raise OSError("the client went away")

    scope = {
        "type": "http", "method": "POST", "path": "/api/generate", "root_path": "",
        "query_string": b"", "scheme": "http", "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
        "http_version": "1.1", "client": ("127.0.0.1", 5555),
    }  # fmt: skip
    with pytest.raises(OSError):
        asyncio.run(app(scope, receive, send))
    assert app.state.wordgpt.active == 0  # released now, not when the collector runs


# ------------------------------------------------------------------ 4. a failed prepare


def test_4_a_prepare_that_fails_leaves_the_data_folder_it_would_replace(corpus_file, tmp_path):
    victim = tmp_path / "victim"
    prepare(victim, DataConfig(dataset=str(corpus_file)), progress=False)
    before = snapshot(victim)
    (tmp_path / "gd" / "x.txt").mkdir(parents=True)  # a glob that matches only a folder
    err = one_line_error(
        cli("prepare", "--dataset", f"{tmp_path}/gd/*.txt", "--out", victim, "--overwrite")
    )
    assert "no file matches" in err and snapshot(victim) == before
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    one_line_error(cli("prepare", "--dataset", empty, "--out", victim, "--overwrite"))
    assert snapshot(victim) == before
    err = one_line_error(cli("prepare", "--dataset", corpus_file, "--out", victim))
    assert "--overwrite" in err and snapshot(victim) == before  # replaced only when asked
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no private folder left


# ------------------------------------------------------------------ 5. folders of the other kind


def test_5_a_run_folder_and_a_data_folder_never_overwrite_each_other(word_data, run, tmp_path):
    data, r = tmp_path / "data", tmp_path / "run"
    shutil.copytree(word_data, data)
    shutil.copytree(run, r)
    d0, r0 = snapshot(data), snapshot(r)
    err = one_line_error(
        cli("train", "--data", word_data, "--out", data, "--preset", "tiny", "--no-progress")
    )
    assert "data folder" in err
    err = one_line_error(cli("prepare", "--dataset", "don-quixote", "--out", r, "--overwrite"))
    assert "run folder" in err
    with pytest.raises(WordGPTError, match="data folder"):
        train(word_data, data, preset="tiny", **QUIET)
    assert snapshot(data) == d0 and snapshot(r) == r0


# ------------------------------------------------------------------ 6. locks


def test_6_a_failed_start_releases_the_lock_in_the_same_process(word_data, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("knight nan nan nan\nsancho nan nan nan\n")  # vectors that are not finite
    out = tmp_path / "r"
    with pytest.raises(WordGPTError, match="not finite"):
        train(word_data, out, preset="tiny", init_embeddings=str(bad), **QUIET)
    r = train(word_data, out, preset="tiny", max_iters=2, **QUIET)  # not "in use"
    assert r.step == 2


def test_6_a_deleted_lock_file_lets_no_second_trainer_in(word_data, tmp_path):
    run = tmp_path / "live"
    args = [
        "--preset",
        "tiny",
        "--max-iters",
        "100000",
        "--eval-interval",
        "20",
        "--no-progress",
        "--dtype",
        "fp32",
    ]
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(run),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (run / "last.pt").exists())
        (run / ".lock").unlink()
        err = one_line_error(
            cli("train", "--data", word_data, "--out", run, "--overwrite", *args[:2])
        )
        assert "in use by another training" in err
        assert not list(tmp_path.glob("live.old-*"))  # the live run was not moved aside
    finally:
        first.terminate()
        first.wait(60)


def test_6_a_run_moved_away_while_training_keeps_its_own_files(word_data, tmp_path):
    """The run writes through its open folder: moving the folder (by hand) while it trains
    neither breaks the run nor lets its files land in a new folder at the old name."""
    run, moved = tmp_path / "r", tmp_path / "moved"
    args = [
        "--preset",
        "tiny",
        "--max-iters",
        "300",
        "--eval-interval",
        "10",
        "--no-progress",
        "--dtype",
        "fp32",
    ]
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "train",
            "--data",
            str(word_data),
            "--out",
            str(run),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (run / "last.pt").exists())
    run.rename(moved)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert checkpoint.read(moved / "last.pt")["step"] == 300 and not run.exists()


# ------------------------------------------------------------------ 7. one line, not a traceback


def test_7_a_few_vectors_narrower_model_than_their_width_still_initialise(word_data, tmp_path):
    words = [
        w for w in json.loads((word_data / "tokenizer.json").read_text())["itos"] if w.isalpha()
    ][:20]
    rng = np.random.default_rng(0)
    path = tmp_path / "twenty.txt"
    path.write_text(
        "".join(
            f"{w} " + " ".join(f"{v:.4f}" for v in rng.standard_normal(50)) + "\n" for w in words
        )
    )
    r = train(
        word_data, tmp_path / "r", preset="tiny", max_iters=2, init_embeddings=str(path), **QUIET
    )
    assert r.step == 2  # 20 vectors of 50 dims onto 32: PCA to 19, then padded


@pytest.mark.parametrize("values", ["nan", "0.0"])
def test_7_non_finite_or_zero_vectors_are_bad_input_and_block_no_rerun(word_data, tmp_path, values):
    path = tmp_path / "v.txt"
    path.write_text("".join(f"{w} {values} {values}\n" for w in ("the", "of", "and", "to")))
    out = tmp_path / "r"
    err = one_line_error(
        cli(
            "train",
            "--data",
            word_data,
            "--out",
            out,
            "--preset",
            "tiny",
            "--init-embeddings",
            path,
            "--no-progress",
        )
    )
    assert "not finite" in err or "zero" in err
    r = cli(
        "train",
        "--data",
        word_data,
        "--out",
        out,
        "--preset",
        "tiny",
        "--max-iters",
        "2",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr  # nothing left behind blocks the rerun


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "meta.json").write_text("garbage{"), "cannot be read"),
        (lambda d: (d / "meta.json").write_text("{}"), "not what `wordgpt prepare` writes"),
        (lambda d: (d / "meta.json").write_text("[1, 2]"), "not a JSON object"),
        (
            lambda d: (d / "train.bin").write_bytes((d / "train.bin").read_bytes()[:-1]),
            "bytes, not the",
        ),
        (
            lambda d: (d / "train.bin").write_bytes(
                np.full(100_000, 65_000, np.uint16).tobytes()[: (d / "train.bin").stat().st_size]
            ),
            "outside the vocabulary",
        ),
        (
            lambda d: (d / "tokenizer.json").write_text('{"kind": "word", "itos": [1, 2]}'),
            "not a list of tokens",
        ),
    ],
)
def test_7_a_damaged_data_folder_is_one_line(word_data, tmp_path, damage, message):
    data = tmp_path / "d"
    shutil.copytree(word_data, data)
    damage(data)
    err = one_line_error(
        cli("train", "--data", data, "--out", tmp_path / "r", "--preset", "tiny", "--no-progress")
    )
    assert message in err, err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_embd": 2**20, "n_head": 1}, "n_embd must be at most"),
        ({"n_layer": 10**7}, "n_layer must be at most"),
        ("a string", "model_config is not a dict"),
        ({"n_layer": 2.5}, "whole number"),
        ({"vocab_size": 3}, "do not fit its config"),
    ],
)
def test_7_a_checkpoint_whose_config_cannot_work_is_one_line_and_fast(
    run, tmp_path, change, message
):
    ck = checkpoint.read(run / "best.pt")
    ck["model_config"] = change if isinstance(change, str) else {**ck["model_config"], **change}
    (tmp_path / "x").mkdir()
    torch.save(ck, tmp_path / "x" / "best.pt")
    t = time.time()
    err = one_line_error(cli("sample", tmp_path / "x", "--max-new-tokens", "2", timeout=120))
    assert message in err and time.time() - t < 60


def test_7_export_to_a_file_or_an_unwritable_place_is_one_line(run, tmp_path):
    need("transformers")
    (tmp_path / "afile").write_text("x")
    assert "is a file" in one_line_error(cli("export", run, "--out", tmp_path / "afile"))
    err = one_line_error(cli("export", run, "--out", "/proc/wordgpt-export-test"))
    assert "cannot write" in err or "permission" in err.lower()


def test_7_a_full_disk_during_export_leaves_nothing_and_a_retry_works(run, tmp_path):
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


# ------------------------------------------------------------------ 8. small ones


def test_8_a_busy_port_is_one_line_before_anything_claims_to_serve(run, tmp_path):
    need("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("serve", run.parent, "--port", port, timeout=120)
    err = one_line_error(r)
    assert "in use" in err and "serving" not in r.stdout + r.stderr.replace(err, "")


def test_8_only_a_dead_processs_temporary_files_are_removed(word_data, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    theirs = out / f".other.json.{dead.stdout.strip()}.tmp"
    live = out / f".other.json.{os.getppid()}.tmp"  # pytest's parent: alive
    for p in (theirs, live):
        p.write_text("x")
    train(word_data, out, preset="tiny", max_iters=2, **QUIET)
    assert not theirs.exists() and live.exists()


def test_8_loading_one_run_never_holds_up_another(run, tmp_path, monkeypatch):
    need("fastapi")
    from wordgpt.use import loaded
    from wordgpt.use.serve.state import ModelCache

    shutil.copytree(run, tmp_path / "a")
    shutil.copytree(run, tmp_path / "b")
    real, started, gate = loaded.load, threading.Event(), threading.Event()

    def slow(path, *a, **k):
        if Path(path).name == "a":
            started.set()
            gate.wait(30)
        return real(path, *a, **k)

    monkeypatch.setattr(loaded, "load", slow)
    cache = ModelCache()
    t = threading.Thread(target=cache.get, args=("a", tmp_path / "a"))
    t.start()
    assert started.wait(30)  # "a" is loading, holding its own lock
    assert cache.get("b", tmp_path / "b").step == 20  # not blocked behind "a"
    gate.set()
    t.join(30)


def test_8_export_says_when_it_takes_last_pt(run, tmp_path):
    need("transformers")
    r2 = tmp_path / "r"
    shutil.copytree(run, r2)
    (r2 / "best.pt").unlink()
    r = cli("export", r2, "--out", tmp_path / "hf")
    assert r.returncode == 0 and "no best.pt yet; reading last.pt (step 20)" in r.stderr
