"""The JSON API's routes, on one ``APIRouter``; every handler gets the server's
:class:`~.state.ServeState` as a dependency.

Cheap reads are GETs (health, the runs, one run, its loss curve and report). Everything
that costs compute (a generation, samples, nearest words, a word map) is a POST of JSON,
which a page on another site cannot send without the server's consent (it gives none: no
CORS), and takes one of the ``--max-active`` slots, released whatever the request does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...config import MAX_TEMPERATURE, SampleConfig
from ...errors import WordGPTError
from ...model.sampling import SHOWCASE
from ...version import package_version
from ..generate import with_seed
from .state import ServeState, read_json, run_curves, run_file, run_summary

STATIC = Path(__file__).parent / "static"
_DEFAULTS = SampleConfig()

router = APIRouter()


def get_state(request: Request) -> ServeState:
    return request.app.state.wordgpt


State = Annotated[ServeState, Depends(get_state)]
RunName = Annotated[str, Field(min_length=1, max_length=200)]


def _text(v: str) -> str:
    """Text that can be sent back as UTF-8 (a lone surrogate cannot)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return v


class GenerateRequest(BaseModel):
    """POST /api/generate: what to generate; left out means the CLI's default. An unset
    seed is drawn by the server and reported, so a good generation can be had again.
    Every field is of its own type: true or "3" is no number (strict)."""

    model_config = ConfigDict(strict=True)

    run: RunName
    prompt: str = ""
    max_new_tokens: int = Field(default=_DEFAULTS.max_new_tokens, ge=1)
    temperature: float = Field(
        default=_DEFAULTS.temperature, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False
    )
    top_k: int | None = Field(default=_DEFAULTS.top_k, ge=0)
    top_p: float | None = Field(default=_DEFAULTS.top_p, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(default=_DEFAULTS.seed, ge=0, le=2**63 - 1)
    ngram: bool = _DEFAULTS.ngram

    _prompt = field_validator("prompt")(classmethod(lambda cls, v: _text(v)))

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if 0 < v < 1e-3:
            raise ValueError(f"must be 0 (greedy) or between 0.001 and {MAX_TEMPERATURE:g}")
        return v


class SamplesRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    run: RunName
    n: int = Field(default=3, ge=1, le=5)
    tokens: int = Field(default=40, ge=1, le=200)


class WordsRequest(BaseModel):
    """Nearest words, or a map, from a run's own token embeddings (``model``) or the word
    vectors kept in its folder (``vectors``)."""

    model_config = ConfigDict(strict=True)

    run: RunName
    source: Literal["model", "vectors"] = "model"
    query: str = Field(default="", max_length=200)
    n: int = Field(default=10, ge=1, le=50)

    _query = field_validator("query")(classmethod(lambda cls, v: _text(v)))


# ------------------------------------------------------------------------ cheap reads


@router.get("/", response_class=HTMLResponse)
async def index():
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("/api/health")
async def health(s: State):
    cfg = s.cfg
    return {
        "status": "ok",
        "version": package_version(),
        "runs": len(s.runs()),
        "active": s.active,
        "max_active": cfg.max_active,
        "finished": list(s.finished),
        "defaults": {
            "temperature": _DEFAULTS.temperature,
            "top_k": _DEFAULTS.top_k,
            "top_p": _DEFAULTS.top_p,
            "max_new_tokens": _DEFAULTS.max_new_tokens,
        },
        "limits": {
            "temperature": MAX_TEMPERATURE,
            "max_new_tokens": cfg.max_new_tokens,
            "prompt_chars": cfg.max_prompt_chars,
            "time_limit_s": cfg.time_limit_s,
        },
    }


@router.get("/api/runs")
async def list_runs(s: State):
    return [run_summary(name, path) for name, path in s.runs().items()]


@router.get("/api/runs/{name}")
async def get_run(name: str, s: State):
    path = s.run_path(name)
    return {
        **run_summary(name, path),
        "config": read_json(path / "config.json"),
        "metrics": run_curves(path),
        "summary": read_json(path / "summary.json"),
    }


@router.get("/api/runs/{name}/{file}")
async def run_document(name: str, file: Literal["loss.png", "report.html"], s: State):
    p = run_file(s.run_path(name), file)
    if p is None:
        raise HTTPException(404, f"this run has no {file} yet")
    return FileResponse(p, media_type="image/png" if file.endswith(".png") else "text/html")


# ------------------------------------------------------------------------ costly work


@router.post("/api/samples")
async def samples(req: SamplesRequest, s: State):
    path = s.run_path(req.run)
    async with s.slot():
        m = await asyncio.to_thread(s.cache.get, req.run, path)
        texts = []
        for seed in range(1, req.n + 1):
            cfg = replace(SHOWCASE, max_new_tokens=req.tokens, seed=seed)
            texts.append((await asyncio.to_thread(m.generate, "", cfg)).text)
    return {"samples": texts}


@router.post("/api/words/neighbors")
async def nearest(req: WordsRequest, s: State):
    from ...vectors.queries import neighbors

    if not req.query.strip():
        raise HTTPException(422, "query: give a word, or an analogy such as king - man + woman")
    async with s.slot():
        try:
            words = await asyncio.to_thread(s.words, req.run, req.source)
            near = neighbors(words.kv, words.normalize(req.query), req.n)
        except WordGPTError as e:
            raise HTTPException(422, str(e)) from None
    out = [[w.strip() or w, round(float(v), 4)] for w, v in near]
    return {"query": req.query, "source": req.source, "neighbors": out}


@router.post("/api/words/map")
async def word_map(req: WordsRequest, s: State):
    async with s.slot():
        try:
            words = await asyncio.to_thread(s.words, req.run, req.source)
            return await asyncio.to_thread(words.map, req.query, req.n)
        except WordGPTError as e:
            raise HTTPException(422, str(e)) from None


@router.post("/api/generate")
async def generate(req: GenerateRequest, request: Request, s: State):
    cfg = s.cfg
    if len(req.prompt) > cfg.max_prompt_chars:
        raise HTTPException(422, f"prompt is longer than {cfg.max_prompt_chars} characters")
    if req.max_new_tokens > cfg.max_new_tokens:
        raise HTTPException(422, f"max_new_tokens must be at most {cfg.max_new_tokens}")
    path = s.run_path(req.run)
    s.take_slot()
    try:
        m = await asyncio.to_thread(s.cache.get, req.run, path)
        if req.top_k is not None and req.top_k > m.tokenizer.vocab_size:
            raise HTTPException(
                422, f"top_k must be at most the vocabulary size {m.tokenizer.vocab_size}"
            )
        events = _events(m, req, request, s)
    except BaseException:
        s.release_slot()
        raise
    return ClosingStreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose generator is closed when the response ends, however it ends (a client
    gone, a send that failed), so that its slot is released at once, not by the garbage
    collector minutes later."""

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"  # ASCII: any text can be sent


async def _events(m, req: GenerateRequest, request: Request, s: ServeState):
    """The generation as server-sent events: ``meta`` (prompt tokens, unknown words, the
    seed), then one ``token`` per piece of text, then ``done`` with why it stopped. The
    slot taken for it is released in ``finally``, whatever happens."""
    cfg = s.cfg
    t0, n, stopped = time.perf_counter(), 0, "length"
    sample_cfg = with_seed(
        SampleConfig(
            max_new_tokens=req.max_new_tokens,
            temperature=req.temperature,
            top_k=req.top_k,
            top_p=req.top_p,
            seed=req.seed,
            ngram=req.ngram,
        )
    )
    seed, pieces, ids = sample_cfg.seed, None, []
    try:
        pieces = await asyncio.to_thread(m.stream, req.prompt, sample_cfg, ids)  # counts n-grams
        partner = m.partner if req.ngram else None
        meta = {
            "run": req.run,
            "prompt_tokens": len(m.tokenizer.encode(req.prompt)),
            "unknown": sorted(m.tokenizer.unknown(req.prompt)),
            "seed": seed,
            "partner": partner.describe() if partner else None,
        }
        yield _sse("meta", meta)
        while True:
            if await request.is_disconnected():
                stopped = "client"
                break
            if time.perf_counter() - t0 > cfg.time_limit_s:
                stopped = "time_limit"
                break
            piece = await asyncio.to_thread(next, pieces, None)
            if piece is None:
                break
            n += 1
            yield _sse("token", {"text": piece})
            if cfg.token_delay_s:
                await asyncio.sleep(cfg.token_delay_s)
        seconds = round(time.perf_counter() - t0, 3)
        found = await asyncio.to_thread(m.copies, ids, None, not req.prompt)
        if stopped != "client" and found is not None:
            yield _sse("copies", found.to_dict())
        yield _sse("done", {"pieces": n, "seconds": seconds, "stopped": stopped, "seed": seed})
    except (asyncio.CancelledError, GeneratorExit):
        stopped = "client"
        raise
    finally:
        if pieces is not None:
            with contextlib.suppress(ValueError):  # a worker thread may still be in next()
                pieces.close()
        s.release_slot({"run": req.run, "pieces": n, "stopped": stopped, "seed": seed})
