"""``wordgpt serve``: a local web page to generate text and look at runs, and its JSON API.

Sound by default: every request is bounded (lengths and ranges refused with a 422 that says
which), each generation has a time limit, at most ``max_active`` run at once (more get a 503
"busy" at once, never a queue), a run name can only be one of the runs found in RUNS_DIR,
and a client that goes away stops its generation. Models are loaded once and cached; a
checkpoint that changes on disk (a training still going) is loaded again (checkpoints are
replaced atomically, so a read is never of a half-written file).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator

from .. import __version__
from ..config import SampleConfig
from ..errors import WordGPTError
from ..sample import stream_text

STATIC = Path(__file__).parent / "static"
_DEFAULTS = SampleConfig()


@dataclass
class ServeConfig:
    """The server's limits."""

    runs_dir: Path
    max_new_tokens: int = 1000
    """The most tokens one request may ask for."""
    max_prompt_chars: int = 2000
    """The longest prompt accepted."""
    time_limit_s: float = 60.0
    """A generation stops after this many seconds."""
    max_active: int = 2
    """Generations running at once; one more gets a 503 "busy"."""
    token_delay_s: float = 0.0
    """A pause after each token (for demonstrations and the browser test)."""


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


# ------------------------------------------------------------------------ runs


def find_runs(runs_dir: Path) -> dict[str, Path]:
    """The runs under ``runs_dir`` by name: its sub-folders holding a checkpoint (or the
    folder itself when it is a run). A link is followed only if it stays inside."""
    root = runs_dir.resolve()
    found = {}
    candidates = [runs_dir] if _is_run(runs_dir) else sorted(p for p in runs_dir.iterdir())
    for p in candidates:
        try:
            real = p.resolve()
        except OSError:
            continue
        if (real == root or root in real.parents) and _is_run(real):
            found[p.name] = real
    return found


def _is_run(p: Path) -> bool:
    return p.is_dir() and ((p / "best.pt").is_file() or (p / "last.pt").is_file())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_summary(name: str, path: Path) -> dict[str, Any]:
    """What the runs list shows: data set, tokenizer, size, steps, best val loss, bits/char
    (measured by ``wordgpt eval`` when known, else estimated from the val loss)."""
    cfg = _read_json(path / "config.json")
    summary = _read_json(path / "summary.json")
    evaluation = _read_json(path / "eval.json")
    meta = _read_json(Path(cfg.get("data_dir", "")) / "meta.json") if cfg.get("data_dir") else {}
    rows = _metrics(path)
    data_cfg = cfg.get("data", {})
    best = summary.get("best_val")
    if best is None and rows:
        best = min(float(r["val_loss"]) for r in rows)
    bpc, exact = evaluation.get("bits_per_char"), True
    if bpc is None and best is not None and meta.get("splits"):
        val = meta["splits"]["val"]
        bpc, exact = best * val["tokens"] / val["chars"] / math.log(2), False
    model = cfg.get("model", {})
    datasets = data_cfg.get("dataset", "?")
    datasets = datasets if isinstance(datasets, list) else [datasets]
    return {
        "name": name,
        "dataset": ", ".join(Path(d).name for d in datasets),
        "tokenizer": (
            data_cfg.get("tokenizer", "?") + ("-sp" if data_cfg.get("space_prefix") else "")
        ),
        "preset": cfg.get("preset"),
        "params": summary.get("params"),
        "shape": f"{model.get('n_layer', '?')} x {model.get('n_embd', '?')}",
        "steps": summary.get("step", int(rows[-1]["step"]) if rows else 0),
        "best_val_loss": best,
        "val_bits_per_char": bpc,
        "bpc_measured": exact and bpc is not None,
        "stopped": summary.get("stopped", "running or stopped early" if rows else None),
        "has_vectors": _vectors(path) is not None,
    }


def _metrics(path: Path) -> list[dict]:
    from ..rundir import parse_metrics

    try:
        return parse_metrics((path / "metrics.csv").read_text(encoding="utf-8"))[0]
    except OSError:
        return []


def _vectors(path: Path) -> Path | None:
    """Word vectors of a run: the ones its embedding was initialised from, or a .kv file in it."""
    cfg = _read_json(path / "config.json")
    init = cfg.get("train", {}).get("init_embeddings")
    if init and Path(init).is_file():
        return Path(init)
    local = sorted(path.glob("*.kv"))
    return local[0] if local else None


# ------------------------------------------------------------------------ models


@dataclass
class _Loaded:
    model: Any
    stamp: tuple[int, int]


@dataclass
class ModelCache:
    """Runs loaded once, again when their checkpoint file changes."""

    entries: dict[str, _Loaded] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str, path: Path):
        from ..run import checkpoint_path, load

        ck = checkpoint_path(path, "best")
        st = ck.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self.lock:
            hit = self.entries.get(name)
            if hit is None or hit.stamp != stamp:
                hit = _Loaded(load(path, "best", device="cpu"), stamp)
                self.entries[name] = hit
            return hit.model


# ------------------------------------------------------------------------ the app


def create_app(cfg: ServeConfig) -> FastAPI:
    app = FastAPI(title="wordgpt", version=__version__, docs_url="/api/docs")
    state = {"active": 0, "finished": deque(maxlen=50)}
    slots = threading.Semaphore(cfg.max_active)
    cache = ModelCache()

    def runs() -> dict[str, Path]:
        return find_runs(cfg.runs_dir)

    def run_path(name: str) -> Path:
        found = runs()
        if name not in found:  # only names from the listing: no path can escape RUNS_DIR
            raise HTTPException(404, f"no run named {name!r} in {cfg.runs_dir}")
        return found[name]

    @app.exception_handler(WordGPTError)
    async def _user_error(request: Request, e: WordGPTError):
        return JSONResponse({"detail": str(e)}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/health")
    async def health():
        return {
            "status": "ok",
            "version": __version__,
            "runs": len(runs()),
            "active": state["active"],
            "max_active": cfg.max_active,
            "finished": list(state["finished"]),
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

    @app.get("/api/runs")
    async def list_runs():
        return [run_summary(name, path) for name, path in runs().items()]

    @app.get("/api/runs/{name}")
    async def get_run(name: str):
        path = run_path(name)
        return {
            **run_summary(name, path),
            "config": _read_json(path / "config.json"),
            "metrics": _metrics(path),
            "summary": _read_json(path / "summary.json"),
        }

    @app.get("/api/runs/{name}/samples")
    async def samples(name: str, n: int = 3, tokens: int = 40):
        path = run_path(name)
        if not (1 <= n <= 5 and 1 <= tokens <= 200):
            raise HTTPException(422, "n must be 1 to 5 and tokens 1 to 200")
        m = await asyncio.to_thread(cache.get, name, path)
        texts = []
        for seed in range(1, n + 1):
            texts.append(
                await asyncio.to_thread(
                    m.generate, "", max_new_tokens=tokens, temperature=0.8, top_k=50, seed=seed
                )
            )
        return {"samples": texts}

    @app.get("/api/runs/{name}/loss.png")
    async def loss_png(name: str):
        p = run_path(name) / "loss.png"
        if not p.is_file():
            raise HTTPException(404, "this run has no loss.png yet")
        return FileResponse(p, media_type="image/png")

    @app.get("/api/runs/{name}/neighbors")
    async def nearest(name: str, q: str, n: int = 10):
        from ..embeddings import load_vectors, neighbors

        vec = _vectors(run_path(name))
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

    @app.get("/api/runs/{name}/tsne", response_class=HTMLResponse)
    async def tsne(name: str):
        vec = _vectors(run_path(name))
        if vec is None:
            raise HTTPException(404, "this run has no word vectors")
        page = await asyncio.to_thread(_tsne_page, vec)
        return FileResponse(page, media_type="text/html")

    @app.post("/api/generate")
    async def generate(req: GenerateRequest, request: Request):
        if len(req.prompt) > cfg.max_prompt_chars:
            raise HTTPException(422, f"prompt is longer than {cfg.max_prompt_chars} characters")
        if req.max_new_tokens > cfg.max_new_tokens:
            raise HTTPException(422, f"max_new_tokens must be at most {cfg.max_new_tokens}")
        path = run_path(req.run)
        if not slots.acquire(blocking=False):
            raise HTTPException(
                503, f"busy: {cfg.max_active} generations are running; try again in a moment"
            )
        try:
            m = await asyncio.to_thread(cache.get, req.run, path)
        except Exception:
            slots.release()
            raise
        if req.top_k is not None and req.top_k > m.tokenizer.vocab_size:
            slots.release()
            raise HTTPException(
                422, f"top_k must be at most the vocabulary size {m.tokenizer.vocab_size}"
            )
        state["active"] += 1
        return StreamingResponse(
            _events(m, req, request, cfg, state, slots),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _events(m, req: GenerateRequest, request: Request, cfg: ServeConfig, state, slots):
    """The generation as server-sent events: ``meta`` (prompt tokens, unknown words), then
    one ``token`` per piece of text, then ``done`` with why it stopped."""
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
        state["active"] -= 1
        state["finished"].append({"run": req.run, "pieces": n, "stopped": stopped})
        slots.release()


def _tsne_page(vectors: Path) -> Path:
    """The interactive t-SNE page of a vector file, made once and cached."""
    import hashlib

    from ..embeddings import load_vectors, plot_tsne
    from ..fileio import cache_dir

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
