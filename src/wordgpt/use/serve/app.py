"""``wordgpt serve``: a local web page to generate text and look at runs, and its JSON API.

It serves its user only. A request must name this server as its Host (localhost, the
address it listens on, or a name allowed with ``--allow-host``), so that a web page
elsewhere cannot reach it through DNS rebinding; a request from a page of another origin
is refused (and no CORS header ever invites one); every POST must carry JSON, which a
plain page on another site cannot send. Every request is bounded (lengths and ranges
refused with a 422 that says which, in words), a body must arrive within a time limit (a
client that sends part of one and stops gets a 408), each generation has a time limit, at most
``max_active`` costly requests run at once (more get a 503 "busy" at once, never a queue),
a run name can only be one of the runs found in RUNS_DIR, a file is served only if it is
a plain file in its run's folder (never a link out), and a client that goes away stops its
generation. Models are loaded once and cached; a checkpoint that changes on disk (a
training still going) is loaded again.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ...errors import WordGPTError
from ...version import package_version
from .routes import STATIC, router
from .state import ModelCache, ServeConfig, ServeState, find_runs

__all__ = ["ModelCache", "ServeConfig", "create_app", "find_runs"]


def host_name(host: str) -> str:
    """The name in a Host header or an origin's netloc, without the port: ``[::1]:80`` ->
    ``::1``, ``localhost:8000`` -> ``localhost``."""
    return (urlsplit(f"//{host}").hostname or "").lower()


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` is this server's own page: plain http, the host name and the port
    that the request was sent to (its Host header). Another local server (another port) or
    https is another origin."""
    try:
        o, h = urlsplit(origin), urlsplit(f"//{host}")
        return (
            o.scheme == "http"
            and (o.hostname or "") == (h.hostname or "")
            and (o.port or 80) == (h.port or 80)
        )
    except ValueError:  # a port that is not a number
        return False


class LocalOnly:
    """ASGI middleware: answer only requests that name this server and come from its page."""

    def __init__(self, app, hosts: set[str]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        why = self.refusal(scope["method"], scope["path"], headers)
        if why is None:
            return await self.app(scope, receive, send)
        code, detail = why
        await JSONResponse({"detail": detail}, status_code=code)(scope, receive, send)

    def refusal(self, method: str, path: str, headers: dict) -> tuple[int, str] | None:
        if host_name(headers.get("host", "")) not in self.hosts:
            return 421, "this server answers only to its own address (see --allow-host)"
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, headers.get("host", "")):
            return 403, "requests from pages of other sites are refused"
        if method == "POST" and not headers.get("content-type", "").startswith("application/json"):
            return 415, "send JSON (content-type: application/json)"
        if method not in ("GET", "HEAD", "POST"):
            return 405, f"{method} is not served"
        return None


class BodyDeadline:
    """ASGI middleware: a request's body must arrive within ``seconds`` of its headers. A
    client that sends part of one and stops gets a 408 and its connection closes, instead of
    holding it (and the handler waiting for the rest) open forever."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = TimedBody(scope, receive, send, self.seconds)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.answered:  # after the 408, the handler's failure to read is expected
                raise


class TimedBody:
    """One request's side of :class:`BodyDeadline`: its messages until the body is whole
    are awaited against the deadline; past it the 408 is sent, the handler is told the
    client left, and whatever the handler sends after that is dropped."""

    def __init__(self, scope, receive, send, seconds: float):
        self.scope, self._receive, self._send, self.seconds = scope, receive, send, seconds
        self.deadline = asyncio.get_running_loop().time() + seconds
        self.whole = self.answered = False

    async def receive(self):
        if self.whole:  # the body is in: waiting for a disconnect may take as long as it takes
            return await self._receive()
        left = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), max(left, 0.0))
        except TimeoutError:
            self.answered = True
            detail = f"the request's body did not arrive within {self.seconds:g} s"
            await JSONResponse({"detail": detail}, status_code=408)(self.scope, None, self._send)
            return {"type": "http.disconnect"}
        self.whole = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    async def send(self, message) -> None:
        if not self.answered:
            await self._send(message)


async def _user_error(request: Request, e: WordGPTError):
    return JSONResponse({"detail": str(e)}, status_code=422)


async def _bad_request(request: Request, e: RequestValidationError):
    """A 422 that says in words what is wrong with which field (never echoing the value,
    which may not even be valid JSON: NaN, 1e400)."""
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return JSONResponse({"detail": "; ".join(parts)}, status_code=422)


def create_app(cfg: ServeConfig) -> FastAPI:
    """The app: the routes of :mod:`.routes` on one :class:`~.state.ServeState`, behind the
    :class:`LocalOnly` guard."""
    app = FastAPI(title="wordgpt", version=package_version(), docs_url="/api/docs")
    app.state.wordgpt = ServeState(cfg)
    app.add_exception_handler(WordGPTError, _user_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyDeadline, seconds=cfg.body_timeout_s)
    app.add_middleware(LocalOnly, hosts=cfg.hosts())
    return app
