"""``wordgpt serve``: the JSON API in-process and over a real socket, and the page in a real
headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .helpers import cli, need, one_line_error, skip_unless

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
    train(word_data, root / "demo", preset="tiny", max_iters=60, eval_interval=20, ngram=3,
          **QUIET)  # fmt: skip
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
        ({"temperature": 99}, "temperature"),
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
        assert not (cut := text_outside_its_svg(driver)), cut
        assert "<unk>" in driver.find_element(By.TAG_NAME, "body").text  # its val row's label
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
    for chart in ("#loss-chart", "#compare-chart"):  # the axis title clear of the top value
        assert not (pairs := overlapping_text(driver, f"{chart} text")), pairs
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#runs-table tbody td")]
    assert not [c for c in cells if re.fullmatch(r"\d{4,}", c)], cells  # 1,234 not 1234
    shot(driver, "serve-runs.png")


OVERLAPS = """
const boxes = [...document.querySelectorAll(arguments[0])].map((e) => {
  const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom, e.textContent];
});
const out = [];
boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
  if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) out.push([a[4], b[4]]);
}));
return out;
"""


def overlapping_text(driver, selector: str) -> list:
    """Pairs of texts matched by ``selector`` whose boxes overlap on the page."""
    return driver.execute_script(OVERLAPS, selector)


def text_outside_its_svg(driver) -> list:
    """Texts drawn past the right edge of their svg (a legend cut off)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('svg text')].filter((t) => "
        "t.getBoundingClientRect().right > t.ownerSVGElement.getBoundingClientRect().right + 1)"
        ".map((t) => t.textContent);"
    )


def words_and_their_map(driver, wait) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "tab-words").click()
    driver.find_element(By.ID, "query").send_keys("the")
    driver.find_element(By.ID, "tsne").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map circle.dot")) > 10)
    assert driver.find_elements(By.CSS_SELECTOR, "#map circle.query")  # the word asked for
    driver.find_element(By.ID, "neighbors").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbors-list li"))
    assert driver.find_elements(By.CSS_SELECTOR, "#map text.query-label")
    assert not (pairs := overlapping_text(driver, "#map text")), pairs
    shot(driver, "serve-words.png")


# -------------------------------------------------------- its user only, its slots always released


def test_the_server_never_loads_a_pickle_nor_a_path_a_config_names(evil_kv, run, tmp_path):
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


def test_another_host_or_another_sites_page_gets_no_answer(srv):
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


def test_another_port_or_scheme_is_another_origin(srv):
    """A page of another local server (another port) or of https is another site."""
    root, make = srv
    c, gen = make(), {"run": "s1", "max_new_tokens": 2}
    for origin in ("http://127.0.0.1:9999", "http://localhost:3000", "https://127.0.0.1:8000",
                   "http://localhost:8000", "http://127.0.0.1:x"):  # fmt: skip
        for method, path, body in [("POST", "/api/generate", gen), ("GET", "/api/runs", None)]:
            r = c.request(method, path, json=body, headers={"Origin": origin})
            assert r.status_code == 403, (origin, path)
    r = c.post("/api/generate", json=gen, headers={"Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 200  # its own page


def test_a_linked_checkpoint_is_never_loaded(srv, tmp_path, monkeypatch):
    """A best.pt that is a link to another run's model: that model is never loaded."""
    from wordgpt.use import loaded

    root, make = srv
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root / "s1", elsewhere)
    shutil.copytree(root / "s1", root / "lnk")
    for name in ("best.pt", "last.pt"):
        (root / "lnk" / name).unlink()
    (root / "lnk" / "best.pt").symlink_to(elsewhere / "best.pt")
    calls = []
    monkeypatch.setattr(loaded, "load", lambda *a, **k: calls.append(a))
    r = make().post("/api/generate", json={"run": "lnk", "max_new_tokens": 3})
    assert r.status_code == 404 and "never followed" in r.json()["detail"] and not calls


def test_a_link_in_a_run_folder_is_never_followed(srv, tmp_path):
    root, make = srv
    secret = tmp_path / "secret.txt"
    secret.write_text("the contents of /etc/passwd")
    (root / "s1" / "loss.png").unlink()
    (root / "s1" / "loss.png").symlink_to(secret)
    r = make().get("/api/runs/s1/loss.png")
    assert r.status_code == 404 and b"passwd" not in r.content


def test_every_costly_route_is_bounded_by_max_active(srv):
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


def test_a_lone_surrogate_or_a_bad_number_is_a_422_and_leaks_no_slot(srv):
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


def test_a_send_that_fails_releases_the_slot_at_once(srv):
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


def test_a_busy_port_is_one_line_before_anything_claims_to_serve(run, tmp_path):
    need("uvicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("serve", run.parent, "--port", port, timeout=120)
    err = one_line_error(r)
    assert "in use" in err and "serving" not in r.stdout + r.stderr.replace(err, "")


def test_loading_one_run_never_holds_up_another(run, tmp_path, monkeypatch):
    need("fastapi")
    from wordgpt.use import loaded
    from wordgpt.use.serve.state import ModelCache

    shutil.copytree(run, tmp_path / "a")
    shutil.copytree(run, tmp_path / "b")
    real, started, gate = loaded.load, threading.Event(), threading.Event()

    def slow(path, *a, **k):
        if Path(path).parent.name == "a":  # its best.pt
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
