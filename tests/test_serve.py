"""``wordgpt serve``: the JSON API in-process and over a real socket, and the page in a real
headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .helpers import need, skip_unless

need("fastapi")
httpx = need("httpx")

import wordgpt  # noqa: E402
from wordgpt.runs import checkpoint  # noqa: E402
from wordgpt.training.train import train  # noqa: E402
from wordgpt.use.report import write_report  # noqa: E402
from wordgpt.use.serve.app import ModelCache, ServeConfig, create_app, find_runs  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "artifacts"
QUIET = {"progress": False, "tensorboard": False, "dtype": "fp32", "report": False}


@pytest.fixture(scope="module")
def runs_dir(word_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(word_data, root / "demo", preset="tiny", max_iters=60, eval_interval=20, **QUIET)
    train(word_data, root / "other", preset="tiny", max_iters=30, eval_interval=10, **QUIET)
    write_report(root / "demo")
    (root / "not-a-run").mkdir()
    outside = tmp_path_factory.mktemp("outside")
    shutil.copytree(root / "demo", outside / "secret")
    (root / "escape").symlink_to(outside / "secret")  # a link out of RUNS_DIR
    return root


def client(runs_dir, **kw):
    from fastapi.testclient import TestClient

    return TestClient(create_app(ServeConfig(runs_dir, **kw)), base_url="http://localhost")


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


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
    assert listed["val_bits_per_char"] == pytest.approx(
        json.loads((run / "eval.json").read_text())["bits_per_char"]
    )


def test_nearest_words_are_asked_as_the_text_was_cleaned(runs_dir):
    """The run's text was lowercased: "The" asks for the token "the" (its own embeddings)."""
    c = client(runs_dir)
    low = c.post("/api/words/neighbors", json={"run": "demo", "query": "the", "n": 5})
    up = c.post("/api/words/neighbors", json={"run": "demo", "query": "The", "n": 5})
    assert low.status_code == up.status_code == 200, up.text
    assert up.json()["neighbors"] == low.json()["neighbors"] and len(low.json()["neighbors"]) == 5
    assert "the" not in [w for w, _ in low.json()["neighbors"]]  # a word is not its own neighbour
    marked = c.post("/api/words/map", json={"run": "demo", "query": "THE"}).json()["query"]
    assert marked is not None  # the word asked for is on the map


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
        ({"temperature": 99}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 10**9}, "top_k"),
        ({"seed": -1}, "seed"),
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
        **{k: v for k, v in QUIET.items() if k != "dtype"},
    )
    b = cache.get("r", run)
    assert b is not a and b.step == 80


def test_find_runs_accepts_a_run_folder_itself(runs_dir):
    assert list(find_runs(runs_dir / "demo")) == ["demo"]


# ------------------------------------------------------------------ over a socket


@pytest.fixture
def server(runs_dir):
    import uvicorn

    def start(**kw):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = create_app(ServeConfig(runs_dir, **kw))
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        t = threading.Thread(target=srv.run, daemon=True)
        t.start()
        deadline = time.time() + 30
        while not srv.started and time.time() < deadline:
            time.sleep(0.02)
        servers.append((srv, t))
        return f"http://127.0.0.1:{port}"

    servers: list = []
    yield start
    for srv, t in servers:
        srv.should_exit = True
        t.join(10)


def health_after_a_generation(url: str, timeout_s: float = 10.0) -> dict:
    """``/api/health`` once it lists a finished generation (or when the time is up)."""
    deadline = time.time() + timeout_s
    while True:
        h = httpx.get(f"{url}/api/health").json()
        if h["finished"] or time.time() > deadline:
            return h
        time.sleep(0.05)


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


# ------------------------------------------------------------------ a real browser

CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@skip_unless(
    os.path.exists(CHROMIUM) and os.path.exists(DRIVER),
    "no Chromium: apt-get install chromium chromium-driver (.ci/run does)",
)
def test_the_page_streams_stops_shows_seeds_runs_side_by_side_and_maps_words(
    server, runs_dir, tmp_path
):
    need("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = server(token_delay_s=0.04)
    driver = chrome(tmp_path / "profile")
    wait = WebDriverWait(driver, 60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(url)
        generate_stop_and_reuse_the_seed(driver, wait, url)
        runs_side_by_side(driver, wait)
        words_and_their_map(driver, wait)
        driver.get((runs_dir / "demo" / "report.html").as_uri())  # the report opens from disk
        assert driver.find_element(By.TAG_NAME, "h1").text.endswith("demo")
        assert driver.find_elements(By.TAG_NAME, "svg")
    finally:
        driver.quit()


def chrome(profile: Path):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / name))
    assert (ARTIFACTS / name).read_bytes()[:4] == b"\x89PNG"


def generate_stop_and_reuse_the_seed(driver, wait, url) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wait.until(lambda d: len(Select(d.find_element(By.ID, "run")).options) == 2)
    driver.find_element(By.ID, "prompt").send_keys("the knight")
    mx = driver.find_element(By.ID, "max_new_tokens")
    mx.clear()
    mx.send_keys("400")
    driver.find_element(By.ID, "generate").click()
    lengths = []
    for _ in range(40):  # watch the text grow, token by token
        lengths.append(len(driver.find_element(By.ID, "out-text").text))
        if len(set(lengths)) >= 4:
            break
        time.sleep(0.05)
    assert len(set(lengths)) >= 4 and lengths == sorted(lengths), lengths
    driver.find_element(By.ID, "stop").click()
    wait.until(lambda d: "stopped" in d.find_element(By.ID, "status").text)
    h = health_after_a_generation(url)
    assert h["finished"][-1]["stopped"] == "client" and h["finished"][-1]["pieces"] < 400
    assert "seed" in driver.find_element(By.ID, "status").text  # the seed is shown...
    driver.find_element(By.ID, "reuse-seed").click()  # ...and can be used again
    assert driver.find_element(By.ID, "seed").get_attribute("value").isdigit()
    shot(driver, "serve-generate.png")
    mx.clear()
    mx.send_keys("100000")  # above the input's bound: refused in the page, in words
    driver.find_element(By.ID, "generate").click()
    wait.until(lambda d: d.find_element(By.ID, "form-error").is_displayed())
    assert "Max new tokens" in driver.find_element(By.ID, "form-error").text


def runs_side_by_side(driver, wait) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-runs").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr"))
    driver.find_element(By.CSS_SELECTOR, "#runs-table tbody tr").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#loss-chart path.curve.val"))
    d = driver.find_element(By.CSS_SELECTOR, "#loss-chart path.curve.val").get_attribute("d")
    assert d.count("L") == 3  # four evaluations: steps 0, 20, 40, 60
    assert driver.find_element(By.ID, "run-report").is_displayed()
    wait.until(lambda d: "generating" not in d.find_element(By.ID, "samples").text)
    for tick in driver.find_elements(By.CSS_SELECTOR, "#runs-table .tick"):
        tick.click()  # both runs, side by side
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#compare-chart path.curve")) == 2)
    shot(driver, "serve-runs.png")


def words_and_their_map(driver, wait) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-words").click()
    driver.find_element(By.ID, "query").send_keys("the")
    driver.find_element(By.ID, "tsne").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle.dot")) > 10)
    assert driver.find_elements(By.CSS_SELECTOR, "#map circle.query")  # the word asked for
    driver.find_element(By.ID, "neighbors").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbors-list li"))
    shot(driver, "serve-words.png")
