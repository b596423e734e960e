"""``wordgpt serve``: a local web page to generate text and look at runs, and its JSON API.

Sound by default: every request is bounded (lengths and ranges refused with a 422 that says
which), each generation has a time limit, at most ``max_active`` run at once (more get a 503
"busy" at once, never a queue), a run name can only be one of the runs found in RUNS_DIR,
and a client that goes away stops its generation. Models are loaded once and cached; a
checkpoint that changes on disk (a training still going) is loaded again (checkpoints are
replaced atomically, so a read is never of a half-written file).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ...errors import WordGPTError
from ...version import package_version
from .routes import STATIC, router
from .state import ModelCache, ServeConfig, ServeState, find_runs

__all__ = ["ModelCache", "ServeConfig", "create_app", "find_runs"]


async def _user_error(request: Request, e: WordGPTError):
    return JSONResponse({"detail": str(e)}, status_code=422)


def create_app(cfg: ServeConfig) -> FastAPI:
    """The app: the routes of :mod:`.routes` on one :class:`~.state.ServeState`."""
    app = FastAPI(title="wordgpt", version=package_version(), docs_url="/api/docs")
    app.state.wordgpt = ServeState(cfg)
    app.add_exception_handler(WordGPTError, _user_error)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
