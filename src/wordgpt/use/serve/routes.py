"""The JSON API's routes, on one ``APIRouter``; every handler gets the server's
:class:`~.state.ServeState` as a dependency."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from ...config import SampleConfig
from ...errors import WordGPTError
from ...version import package_version
from ..sample import stream_text
from .state import ServeConfig, ServeState, read_json, run_metrics, run_summary, vectors_of

STATIC = Path(__file__).parent / "static"
_DEFAULTS = SampleConfig()

router = APIRouter()


def get_state(request: Request) -> ServeState:
    return request.app.state.wordgpt


State = Annotated[ServeState, Depends(get_state)]


class GenerateRequest(BaseModel):
    """POST /api/generate: what to generate; left out means the CLI's default."""

    run: str = Field(min_length=1, max_length=200)
    prompt: str = ""
    max_new_tokens: int = Field(default=_DEFAULTS.max_new_tokens, ge=1)
    temperature: float = Field(default=_DEFAULTS.temperature, ge=0.0, le=5.0)
    top_k: int | None = Field(default=_DEFAULTS.top_k, ge=1)
    top_p: float | None = Field(default=_DEFAULTS.top_p, gt=0.0, le=1.0)
    seed: int | None = Field(default=_DEFAULTS.seed, ge=0, le=2**63 - 1)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: float) -> float:
        if not math.isfinite(v) or 0 < v < 1e-3:
            raise ValueError("temperature must be 0 (greedy) or between 0.001 and 5")
        return v


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
        "metrics": run_metrics(path),
        "summary": read_json(path / "summary.json"),
    }


@router.get("/api/runs/{name}/samples")
async def samples(name: str, s: State, n: int = 3, tokens: int = 40):
    path = s.run_path(name)
    if not (1 <= n <= 5 and 1 <= tokens <= 200):
        raise HTTPException(422, "n must be 1 to 5 and tokens 1 to 200")
    m = await asyncio.to_thread(s.cache.get, name, path)
    texts = []
    for seed in range(1, n + 1):
        texts.append(
            await asyncio.to_thread(
                m.generate, "", max_new_tokens=tokens, temperature=0.8, top_k=50, seed=seed
            )
        )
    return {"samples": texts}


@router.get("/api/runs/{name}/loss.png")
async def loss_png(name: str, s: State):
    p = s.run_path(name) / "loss.png"
    if not p.is_file():
        raise HTTPException(404, "this run has no loss.png yet")
    return FileResponse(p, media_type="image/png")


@router.get("/api/runs/{name}/neighbors")
async def nearest(name: str, q: str, s: State, n: int = 10):
    from ...vectors.files import load_vectors
    from ...vectors.queries import neighbors

    vec = vectors_of(s.run_path(name))
    if vec is None:
        raise HTTPException(404, "this run has no word vectors")
    if not (1 <= n <= 50) or not (0 < len(q) <= 200):
        raise HTTPException(422, "q must be 1 to 200 characters and n 1 to 50")
    kv = await asyncio.to_thread(load_vectors, vec)
    try:
        near = neighbors(kv, q, n)
    except WordGPTError as e:
        raise HTTPException(422, str(e)) from None
    return {"query": q, "vectors": str(vec), "neighbors": [[w, s] for w, s in near]}


@router.get("/api/runs/{name}/tsne", response_class=HTMLResponse)
async def tsne(name: str, s: State):
    vec = vectors_of(s.run_path(name))
    if vec is None:
        raise HTTPException(404, "this run has no word vectors")
    page = await asyncio.to_thread(_tsne_page, vec)
    return FileResponse(page, media_type="text/html")


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
    except BaseException:
        s.release_slot()
        raise
    return StreamingResponse(
        _events(m, req, request, s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(m, req: GenerateRequest, request: Request, s: ServeState):
    """The generation as server-sent events: ``meta`` (prompt tokens, unknown words), then
    one ``token`` per piece of text, then ``done`` with why it stopped."""
    cfg: ServeConfig = s.cfg
    t0, n, stopped = time.perf_counter(), 0, "length"
    sample_cfg = SampleConfig(
        max_new_tokens=req.max_new_tokens,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        seed=req.seed,
    )
    pieces = stream_text(m.gpt, m.tokenizer, req.prompt, sample_cfg, m.device)
    try:
        unknown = m.tokenizer.unknown(req.prompt)
        yield _sse(
            "meta",
            {
                "run": req.run,
                "prompt_tokens": len(m.tokenizer.encode(req.prompt)),
                "unknown": sorted(unknown),
                "seed": req.seed,
            },
        )
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
        yield _sse(
            "done", {"pieces": n, "seconds": round(time.perf_counter() - t0, 3), "stopped": stopped}
        )
    except (asyncio.CancelledError, GeneratorExit):
        stopped = "client"
        raise
    finally:
        with contextlib.suppress(ValueError):  # a worker thread may still be in next()
            pieces.close()
        s.release_slot({"run": req.run, "pieces": n, "stopped": stopped})


def _tsne_page(vectors: Path) -> Path:
    """The interactive t-SNE page of a vector file, made once and cached."""
    import hashlib

    from ...fileio import cache_dir
    from ...vectors.files import load_vectors
    from ...vectors.tsne import plot_tsne

    st = vectors.stat()
    key = hashlib.sha256(f"{vectors.resolve()}|{st.st_mtime_ns}|{st.st_size}".encode()).hexdigest()
    out = cache_dir() / "serve" / f"tsne-{key[:16]}"
    html = out.with_suffix(".html")
    if not html.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        plot_tsne(
            load_vectors(vectors),
            out.with_suffix(".png"),
            n_words=1500,
            n_labels=60,
            size=(900, 900),
            html=html,
        )
    return html
