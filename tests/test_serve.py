"""``wordgpt serve``: the JSON API in-process and over a real socket (the page in a browser is
test_browser.py, what it refuses test_serve_guard.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .helpers import FAST, need
from .serving import client, events, health_after_a_generation

need("fastapi")
httpx = need("httpx")

import wordgpt  # noqa: E402
from wordgpt.runs import checkpoint  # noqa: E402
from wordgpt.use.serve.app import ModelCache, find_runs  # noqa: E402
from wordgpt.use.train_run import train  # noqa: E402

# ------------------------------------------------------------------ the API in-process


def test_runs_are_listed_with_their_figures_and_links_out_are_not(runs_dir):
    c = client(runs_dir)
    runs = c.get("/api/runs").json()
    assert [r["name"] for r in runs] == ["demo", "other"]  # not the plain folder, nor the link
    r = runs[0]
    assert r["has_report"] is True and runs[1]["has_report"] is False
    assert c.get("/api/runs/demo/report.html").text.startswith("<!doctype html>")
    ck = checkpoint.read(runs_dir / "demo" / "best.pt")
    assert r["steps"] == 60 and r["tokenizer"] == "word" and r["preset"] == "tiny"
    assert r["best_val_loss"] == pytest.approx(ck["best_val"])
    assert r["params"] == wordgpt.load(runs_dir / "demo").gpt.num_params()
    assert r["val_bits_per_char"] > 0 and r["bpc_measured"] is False
    meta = json.loads((Path(ck["data_dir"]) / "meta.json").read_text())
    assert r["val_unk_share"] == meta["splits"]["val"]["unk_share"]  # beside every figure
    detail = c.get("/api/runs/demo").json()
    assert [int(m["step"]) for m in detail["metrics"]] == [0, 20, 40, 60]
    assert detail["config"]["model"]["n_layer"] == 2
    assert c.get("/api/runs/demo/loss.png").content[:4] == b"\x89PNG"
    h = c.get("/api/health").json()
    assert h["status"] == "ok" and h["runs"] == 2 and h["defaults"]["temperature"] == 0.8


def test_a_measured_bits_per_char_replaces_the_estimate(runs_dir, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(runs_dir / "demo", run)
    r = subprocess.run(
        [sys.executable, "-m", "wordgpt.cli", "eval", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    listed = client(tmp_path).get("/api/runs").json()[0]
    assert listed["bpc_measured"] is True
    evaluated = json.loads((run / "eval.json").read_text())  # the headline: with the partner
    assert listed["val_bits_per_char"] == pytest.approx(evaluated["headline_bits_per_char"])
    assert listed["gpt_bits_per_char"] == pytest.approx(evaluated["bits_per_char"])


def test_nearest_words_are_asked_as_the_text_was_cleaned(runs_dir):
    """The run's text was lowercased: "The" asks for the token "the" (its own embeddings)."""
    c = client(runs_dir)
    low = c.post("/api/words/neighbors", json={"run": "demo", "query": "the", "n": 5})
    up = c.post("/api/words/neighbors", json={"run": "demo", "query": "The", "n": 5})
    assert low.status_code == up.status_code == 200, up.text
    assert up.json()["neighbors"] == low.json()["neighbors"] and len(low.json()["neighbors"]) == 5
    assert "the" not in [w for w, _ in low.json()["neighbors"]]  # a word is not its own neighbour
    m = c.post("/api/words/map", json={"run": "demo", "query": "THE", "n": 5}).json()
    assert m["query"] is not None  # the word asked for is on the map
    listed = {w for w, _ in low.json()["neighbors"]}
    assert m["neighbors"] and {m["words"][i] for i in m["neighbors"]} <= listed


def test_a_map_of_a_word_not_in_the_vocabulary_is_refused_before_its_t_sne(monkeypatch):
    """A character run's map asked for a word: one clear error at once, not after seconds of
    t-SNE."""
    import numpy as np

    from wordgpt.errors import WordGPTError
    from wordgpt.use import words as words_mod
    from wordgpt.vectors.files import keyed_vectors

    kv = keyed_vectors(list("abcdefgh"), np.eye(8, dtype=np.float32))
    monkeypatch.setattr(words_mod, "word_map", lambda *a, **k: pytest.fail("t-SNE ran"))
    with pytest.raises(WordGPTError, match="not in the vectors' vocabulary"):
        words_mod.Words(kv, "model").map("knight")


def test_streaming_gives_the_same_text_as_wordgpt_sample(runs_dir):
    c = client(runs_dir)
    body = {"run": "demo", "prompt": "the knight", "max_new_tokens": 30, "seed": 7, "top_k": 40}
    r = c.post("/api/generate", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    assert evs[0][0] == "meta" and evs[-1] == ("done", {**evs[-1][1], "stopped": "length"})
    streamed = "".join(d["text"] for e, d in evs if e == "token")
    assert len([e for e, _ in evs if e == "token"]) > 5
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "wordgpt.cli",
            "sample",
            str(runs_dir / "demo"),
            "--prompt",
            "the knight",
            "--max-new-tokens",
            "30",
            "--seed",
            "7",
            "--top-k",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == "the knight" + streamed + "\n"  # the same defaults, the same text


def test_a_generation_mixes_the_runs_partner_unless_asked_not_to(runs_dir):
    c = client(runs_dir)
    body = {"run": "demo", "prompt": "the knight", "max_new_tokens": 20, "temperature": 0}
    mixed, alone = (events(c.post("/api/generate", json={**body, "ngram": n}).text)
                    for n in (True, False))  # fmt: skip
    assert "3-gram partner" in mixed[0][1]["partner"] and alone[0][1]["partner"] is None
    text = ["".join(d["text"] for e, d in evs if e == "token") for evs in (mixed, alone)]
    assert text[0] != text[1]  # a 60-step GPT and the book's 3-grams disagree
    other = events(c.post("/api/generate", json={**body, "run": "other"}).text)
    assert other[0][1]["partner"] is None  # a run without one


def test_unknown_prompt_words_are_named(runs_dir):
    r = client(runs_dir).post(
        "/api/generate", json={"run": "demo", "prompt": "the zyzzyva quux", "max_new_tokens": 3}
    )
    meta = events(r.text)[0][1]
    assert meta["unknown"] == ["quux", "zyzzyva"]


@pytest.mark.parametrize(
    "change, where",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 1001}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": 1e-40}, "temperature"),
        ({"temperature": 101}, "temperature"),  # above sample's own cap, MAX_TEMPERATURE
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 10**9}, "top_k"),
        ({"seed": -1}, "seed"),
        ({"max_new_tokens": True}, "max_new_tokens"),  # a boolean is no number
        ({"max_new_tokens": "3"}, "max_new_tokens"),  # nor is text
        ({"top_k": 2.5}, "top_k"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"run": ""}, "run"),
    ],
)
def test_bad_parameters_get_422_saying_which(runs_dir, change, where):
    r = client(runs_dir).post("/api/generate", json={"run": "demo", **change})
    assert r.status_code == 422 and where in json.dumps(r.json()), r.text


@pytest.mark.parametrize(
    "url",
    [
        "/api/runs/escape",
        "/api/runs/not-a-run",
        "/api/runs/..%2F..%2Fetc",
        "/api/runs/%2Fetc",
        "/api/runs/escape/loss.png",
        "/api/runs/..%2Fdemo/loss.png",
    ],
)
def test_a_run_name_never_escapes_the_runs_folder(runs_dir, url):
    c = client(runs_dir)
    assert c.get(url).status_code == 404
    name = url.split("/")[3]
    r = c.post("/api/generate", json={"run": name.replace("%2F", "/"), "max_new_tokens": 2})
    assert r.status_code in (404, 422)


def test_a_changed_checkpoint_is_loaded_again(runs_dir, tmp_path, word_data):
    run = tmp_path / "r"
    shutil.copytree(runs_dir / "demo", run)
    cache = ModelCache()
    a = cache.get("r", run)
    assert cache.get("r", run) is a  # cached
    train(
        word_data,
        run,
        resume=True,
        max_iters=80,
        **{k: v for k, v in FAST.items() if k != "dtype"},
    )
    b = cache.get("r", run)
    assert b is not a and b.step == 80


def test_find_runs_accepts_a_run_folder_itself(runs_dir):
    assert list(find_runs(runs_dir / "demo")) == ["demo"]


# ------------------------------------------------------------------ over a socket


def test_the_concurrency_limit_holds_under_a_burst(server):
    url = server(max_active=2, token_delay_s=0.05)
    codes, lock = [], threading.Lock()

    def one():
        with httpx.Client(timeout=60) as c:
            r = c.post(f"{url}/api/generate", json={"run": "demo", "max_new_tokens": 30})
            with lock:
                codes.append((r.status_code, r.json()["detail"] if r.status_code != 200 else ""))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(c for c, _ in codes) == [200, 200, 503, 503, 503, 503]
    assert all("busy" in d for c, d in codes if c == 503)
    assert httpx.get(f"{url}/api/health").json()["active"] == 0


def test_a_client_that_disconnects_stops_its_generation(server):
    url = server(token_delay_s=0.05)
    with (
        httpx.Client(timeout=60) as c,
        c.stream("POST", f"{url}/api/generate", json={"run": "demo", "max_new_tokens": 500}) as r,
    ):
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("event: token")
            if seen >= 3:
                break  # leave after three tokens: the connection closes
    h = health_after_a_generation(url)
    last = h["finished"][-1]
    assert last["stopped"] == "client" and last["pieces"] < 50 and h["active"] == 0


def test_a_generation_stops_at_its_time_limit(server):
    url = server(token_delay_s=0.05, time_limit_s=0.5)
    r = httpx.post(f"{url}/api/generate", json={"run": "demo", "max_new_tokens": 500}, timeout=60)
    done = events(r.text)[-1]
    assert done[0] == "done" and done[1]["stopped"] == "time_limit" and done[1]["pieces"] < 100


def test_an_ensemble_run_writes_on_the_page_what_sample_writes(run, trained_once, tmp_path):
    """A run with a further member (another run of the same vocabulary, in RUN/members/2):
    the page's text for a seed is the ensemble's, as `wordgpt sample RUN` gives it, not the
    first model's alone; a member that is a link is never read."""
    root = tmp_path / "runs"
    shutil.copytree(run, root / "ens")
    shutil.copytree(trained_once, root / "ens" / "members" / "2")
    body = {"run": "ens", "prompt": "the knight", "max_new_tokens": 15, "seed": 3,
            "temperature": 1.0, "top_k": 0, "ngram": False}  # fmt: skip
    page = "".join(d["text"] for e, d in events(client(root).post("/api/generate", json=body).text)
                   if e == "token")  # fmt: skip
    ens = wordgpt.load(root / "ens", device="cpu")
    assert len(ens.gpt.members) == 2
    kw = {"max_new_tokens": 15, "seed": 3, "temperature": 1.0, "top_k": 0}
    assert page == ens.generate("the knight", **kw).text
    assert (
        page
        != wordgpt.load(root / "ens" / "best.pt", device="cpu").generate("the knight", **kw).text
    )
    shutil.move(root / "ens" / "members" / "2", tmp_path / "away")
    (root / "ens" / "members" / "2").symlink_to(tmp_path / "away")
    assert not hasattr(wordgpt.load(root / "ens", device="cpu").gpt, "members")


def test_the_page_caps_what_sample_caps_and_asks_for_no_favicon(runs_dir):
    """One temperature cap (config.MAX_TEMPERATURE) for `sample`, the API and the page's
    input (which takes it from /api/health); the page names its icon, so a browser asks for
    no /favicon.ico (a 404 in every console)."""
    from wordgpt.config import MAX_TEMPERATURE

    c = client(runs_dir)
    assert c.get("/api/health").json()["limits"]["temperature"] == MAX_TEMPERATURE == 100
    body = {"run": "demo", "max_new_tokens": 2, "seed": 1, "temperature": MAX_TEMPERATURE}
    assert c.post("/api/generate", json=body).status_code == 200
    page = c.get("/").text
    assert '<link rel="icon"' in page and 'id="temperature"' in page and 'max="5"' not in page


def test_the_model_cache_keeps_the_runs_used_last_and_lets_the_others_go(run, tmp_path):
    from wordgpt.use.serve.state import ModelCache

    for name in "abc":
        shutil.copytree(run, tmp_path / name)
    cache = ModelCache(size=2)
    a = cache.get("a", tmp_path / "a")
    cache.get("b", tmp_path / "b")
    assert cache.get("a", tmp_path / "a") is a  # used again: kept
    cache.get("c", tmp_path / "c")
    assert list(cache.entries) == ["a", "c"]  # b, used longest ago, let go
    assert cache.get("b", tmp_path / "b") is not None and list(cache.entries) == ["c", "b"]
