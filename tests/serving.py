"""Helpers of the tests of ``wordgpt serve`` (the JSON API in-process and over a socket, and
the page in a browser): the fixtures that train its runs and start its servers are in
conftest.py."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from .helpers import FAST


def make_runs(word_data, root: Path) -> Path:
    """Two tiny runs (``demo`` with a 3-gram partner and a report, ``other``), a folder that
    is no run, and a link out of the runs folder."""
    import shutil

    from wordgpt.use.report import write_report
    from wordgpt.use.train_run import train

    train(word_data, root / "demo", preset="tiny", max_iters=60, eval_interval=20, ngram=3,
          **FAST)  # fmt: skip
    train(word_data, root / "other", preset="tiny", max_iters=30, eval_interval=10, **FAST)
    write_report(root / "demo")
    (root / "not-a-run").mkdir()
    outside = root.parent / f"{root.name}-outside"
    shutil.copytree(root / "demo", outside / "secret")
    (root / "escape").symlink_to(outside / "secret")  # a link out of RUNS_DIR
    return root


def client(runs_dir, **kw):
    """The app on ``runs_dir`` in-process (FastAPI's test client)."""
    from fastapi.testclient import TestClient

    from wordgpt.use.serve.app import ServeConfig, create_app

    return TestClient(create_app(ServeConfig(runs_dir, **kw)), base_url="http://localhost")


def events(text: str) -> list[tuple[str, dict]]:
    """The server-sent events of a response: (event, data)."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def start_server(runs_dir: Path, servers: list, **kw) -> str:
    """The app on ``runs_dir`` served by uvicorn on a free port in a thread (kept in
    ``servers`` to stop); returns its URL."""
    import uvicorn

    from wordgpt.use.serve.app import ServeConfig, create_app

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


def health_after_a_generation(url: str, timeout_s: float = 10.0) -> dict:
    """``/api/health`` once it lists a finished generation (or when the time is up)."""
    import httpx

    deadline = time.time() + timeout_s
    while True:
        h = httpx.get(f"{url}/api/health").json()
        if h["finished"] or time.time() > deadline:
            return h
        time.sleep(0.05)
