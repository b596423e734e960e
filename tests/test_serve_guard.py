"""``wordgpt serve`` answers its user only, and always releases its slots: no pickle nor a
path a config names is ever loaded, another host or origin gets no answer, links are never
followed, every costly route is bounded, a failed send frees its slot at once, a busy port is
one line, and loading one run never holds up another."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from .helpers import cli, need, one_line_error

need("fastapi")


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
        if Path(path).name == "a":  # its run folder
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


def test_a_body_that_stops_half_way_gets_a_408_and_its_connection_closes(server):
    """A client that sends headers and part of a body, then nothing: after the body's time
    limit a 408 that says why, and the connection closed (before: held open, forever)."""
    from urllib.parse import urlsplit

    url = urlsplit(server(body_timeout_s=1.0))
    head = (b"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\n\r\n")  # fmt: skip
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(head + b'{"run": ')
        answer = b""
        while chunk := s.recv(4096):  # b"" once the server closes the connection
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 s" in answer
