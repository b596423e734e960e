"""The report's two renderings: a self-contained HTML page (inline CSS and SVG, no script)
and markdown, from the figures that :func:`wordgpt.use.report.gather` collects."""

from __future__ import annotations

import html
import json

from ..corpus.build import describe_split

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;
color:#1d1d1f}h1{color:#a0282d;font-size:1.4rem}h2{font-size:1.1rem;border-bottom:1px solid
#ddd;padding-bottom:.2rem}table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;
text-align:left;vertical-align:top}
th{color:#6e6e73;font-weight:normal}.sample{font-family:Georgia,serif;background:#fbfaf7;
padding:.6rem .8rem;border:1px solid #ddd;border-radius:6px}mark{background:#dbeafe;
border-bottom:2px solid #1f6fb2}svg{border:1px solid #ddd;border-radius:6px;background:#fff}
"""


def _e(v) -> str:
    return html.escape(str(v))


def _count(n, noun: str) -> str:
    """``1 step``, ``20 steps``; a count not known: ``– steps``."""
    return f"{_num(n)} {noun}{'' if n == 1 else 's'}"


def samples_heading(n: int) -> str:
    seeds = "none" if not n else "seed 1" if n == 1 else f"seeds 1-{n}"
    return f"Samples ({seeds}; copied spans marked)" if n else f"Samples ({seeds})"


def _num(v, fmt: str = ",") -> str:
    if v is None:
        return "–"
    try:
        return format(v, fmt)
    except (TypeError, ValueError):
        return str(v)


def rows(r: dict) -> dict[str, list[tuple[str, str]]]:
    """The report's tables: (label, value) by section."""
    return {"Data": data_rows(r), "Model": model_rows(r), "Training": training_rows(r),
            "Machine": machine_rows(r)}  # fmt: skip


def data_rows(r: dict) -> list[tuple[str, str]]:
    d = r["data"]
    splits = d.get("splits") or {}
    tr, va = splits.get("train", {}), splits.get("val", {})
    vocab = f"{d['tokenizer']}, vocabulary {_num(d['vocab_size'])}"
    if d.get("tokenizer_from"):
        vocab += f" (from {d['tokenizer_from']})"
    return [
        ("sources", ", ".join(s.get("dataset", "?") for s in d["sources"]) or "?"),
        ("tokenizer", vocab),
        ("train", f"{_num(tr.get('tokens'))} tokens, {_num(tr.get('chars'))} characters"),
        (
            "val",
            f"{_num(va.get('tokens'))} tokens, {_num(va.get('chars'))} characters, "
            f"&lt;unk&gt; {_num(va.get('unk_share', 0), '.2%')} of its tokens",
        ),
        ("split", _e(describe_split(d.get("split_rule") or {}))),
    ]


def model_rows(r: dict) -> list[tuple[str, str]]:
    m = r["model"]
    shape = (
        f"{m.get('n_layer')} layers x {m.get('n_embd')} wide, {m.get('n_head')} heads, "
        f"context {m.get('block_size')}, {m.get('head')} head, {m.get('pos')} positions"
    )
    rows = [
        ("shape", shape),
        ("parameters", _num(m.get("params"))),
        ("FLOPs per token", _num(m.get("flops_per_token"), ",.0f")),
    ]
    if (n := m.get("members") or 1) > 1:
        rows.append((
            "ensemble",
            f"{n} models of this shape (seeds one apart, each trained until the pass cap; "
            "RUN/members/): evaluation and samples average their probabilities",
        ))  # fmt: skip
    return rows


def training_rows(r: dict) -> list[tuple[str, str]]:
    t = r["training"]
    init = t.get("init_from")
    peak = _num((t.get("peak_flops") or 0) / 1e9, ",.0f")
    preset = str(t.get("preset")) + (f" ({t['recipe']})" if t.get("recipe") else "")
    speed = f"{_num(t.get('elapsed_s'), ',.0f')} s, {_num(t.get('tokens_per_s'), ',.0f')} tokens/s"
    return [
        ("preset", _e(preset)),
        ("steps, tokens", f"{_count(t.get('step'), 'step')}, {_count(t.get('tokens'), 'token')}"),
        ("time, speed", speed),
        ("MFU", f"{_num(t.get('mfu'), '.1%')} of {peak} GFLOP/s"),
        ("device, dtype", f"{t.get('device')}, {t.get('dtype')}"),
        ("stopped", stopped_text(t)),
        ("started from", _e(f"{init['run']} (step {init['step']})") if init else "random weights"),
    ]


def stopped_text(t: dict) -> str:
    """Why the run stopped, or that it is still training (a report made during training)."""
    if t.get("running") is not None:
        return (
            f"still training (pid {t['running']}): step {_num(t.get('step'))} after "
            f"{_num(t.get('elapsed_s'), ',.0f')} s when this report was made"
        )
    return f"{t.get('stopped')} (best val loss {_num(t.get('best_val'), '.4f')})"


def machine_rows(r: dict) -> list[tuple[str, str]]:
    m = r["machine"]
    return [
        ("CPU", _e(f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB")),
        ("GPU", _e(m["gpu"] or "none")),
        ("versions", f"wordgpt {m['wordgpt']}, torch {m['torch']}, Python {m['python']}"),
    ]


def evaluation_rows(r: dict) -> list[tuple[str, str]]:
    ev, c = r.get("evaluation"), r.get("copies")
    out = []
    if ev:
        gpt, how = (
            f"{ev['bits_per_char']:.4f}",
            (
                f" (whole split; each &lt;unk&gt; charged its spelling: "
                f"{ev['spell_bits_per_char']:.4f} of it"
                + (f"; the line model: {lb:.4f}" if (lb := ev.get("line_bits_per_char")) else "")
                + ")"
            ),
        )
        if ng := ev.get("ngram"):  # the headline: what `wordgpt eval` prints last
            out += [
                ("val bits per character", (
                    f"<b>{ng['bits_per_char']:.4f}</b>: the GPT mixed with a {ng['order']}-gram "
                    f"model of the training text, the GPT's weight {ng['gpt_weight']:.2f} "
                    f"(fitted on the last {ng['held_out_tokens']:,} training tokens, kept from "
                    "the GPT); the samples are drawn from the mixture")),
                ("the GPT alone", gpt + how),
            ]  # fmt: skip
        else:
            out.append(("val bits per character", f"<b>{gpt}</b>{how}"))
        out += [
            ("loss, perplexity", f"{ev['loss']:.4f} nats per token, {ev['perplexity']:.2f}"),
            ("<unk> share", f"{ev['unk_share']:.2%} of the val tokens"),
        ]
    elif (est := r["training"].get("best_val_bits_per_char_estimate")) is not None:
        out.append(
            ("val bits per character", f"{est:.4f} (estimated on the training's loss batches)")
        )
    if r.get("left_out"):
        out.append(
            (
                "left out for the time budget",
                _e(", ".join(r["left_out"]) + " (wordgpt report RUN writes them)"),
            )
        )
    if c:
        share = (
            f"samples {c['sample_ngrams_in_train']:.1%}, the val split's own text "
            f"{c['val_ngrams_in_train']:.1%} (chance)"
        )
        out += [
            (f"{c['n']}-grams in the training text", share),
            ("samples' text in copied spans", f"{c['sample_text_copied']:.1%}"),
        ]
    return out


def table(pairs) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f"<table>{body}</table>"


def curve_svg(points: list[list[tuple[float, float]]], names, ylabel: str, w=900, h=260) -> str:
    """Line curves as an inline SVG (x: step)."""
    pts = [p for s in points for p in s]
    if not pts:
        return "<p>no evaluations yet</p>"
    x0, x1 = min(p[0] for p in pts), max(max(p[0] for p in pts), 1)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    pad = max(0.08 * (y1 - y0), 0.01 * max(abs(y0), abs(y1)), 1e-9)  # no curve on an edge
    y0, y1 = y0 - pad, y1 + pad
    sx = lambda v: 50 + (v - x0) / max(x1 - x0, 1e-9) * (w - 150)  # noqa: E731
    sy = lambda v: h - 30 - (v - y0) / (y1 - y0) * (h - 50)  # noqa: E731
    colours = ["#1f6fb2", "#a0282d", "#2ca02c"]
    parts = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (s, name) in enumerate(zip(points, names, strict=True)):
        d = " ".join(f"{'L' if j else 'M'}{sx(a):.1f},{sy(b):.1f}" for j, (a, b) in enumerate(s))
        parts.append(f'<path d="{d}" fill="none" stroke="{colours[i]}" stroke-width="2"/>')
        parts.append(
            f'<text x="{w - 6}" y="{20 + 16 * i}" text-anchor="end" fill="{colours[i]}">'
            f"{_e(name)}</text>"
        )
    parts.append(f'<text x="50" y="{h - 8}" font-size="12">step {x0:,.0f} to {x1:,.0f}</text>')
    parts.append(f'<text x="4" y="14" font-size="12">{_e(ylabel)}: {y0:.3g} to {y1:.3g}</text>')
    return "".join(parts) + "</svg>"


def summary(sample: dict) -> str:
    """A sample's copies line ("" where its copies were not looked for)."""
    return (sample.get("copies") or {}).get("summary", "")


def marked(sample: dict) -> str:
    """A sample's text, its copied spans in <mark> (hover: where they are from)."""
    text, c = sample["text"], sample.get("copies")
    out, at = [], 0
    for s in sorted((c or {}).get("spans", []), key=lambda s: s["start"]):
        out.append(_e(text[at : s["start"]]))
        title = _e(f"{s['where']}: …{s['source']}…")
        out.append(f'<mark title="{title}">{_e(text[s["start"] : s["end"]])}</mark>')
        at = s["end"]
    return "".join(out) + _e(text[at:])


def page(r: dict) -> str:
    """The self-contained HTML report."""
    ms = r["metrics"]
    losses = [[(int(x["step"]), float(x[k])) for x in ms] for k in ("train_loss", "val_loss")]
    loss = curve_svg(losses, ["train", "val"], "loss (nats per token)")
    lr = curve_svg([[(int(x["step"]), float(x["lr"])) for x in ms]], ["learning rate"], "lr")
    samples = (
        "".join(f'<p class="sample">{marked(s)}</p><p>{_e(summary(s))}</p>' for s in r["samples"])
        or "<p>none: left out for the time budget</p>"
    )
    if r.get("samples_mixed") and r["samples"]:
        samples = f"<p>Drawn {_e(r['samples_mixed'])}.</p>{samples}"
    parts = {"Curves": f"{loss}{lr}", samples_heading(len(r["samples"])): samples}
    parts.update({k: table(v) for k, v in sections(r).items()})
    data = json.dumps(r, default=str).replace("</", "<\\/")
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(r['run'])}: "
        f"wordgpt report</title><style>{STYLE}</style></head><body><h1>{_e(r['run'])}</h1>"
        + "".join(f"<h2>{_e(k)}</h2>{parts[k]}" for k in order(r))
        + f'<script type="application/json" id="report-data">{data}</script></body></html>'
    )


def sections(r: dict) -> dict[str, list[tuple[str, str]]]:
    """The report's tables and the evaluation's, by section."""
    return {**rows(r), "Evaluation": evaluation_rows(r)}


def order(r: dict) -> list[str]:
    """The sections in the order both forms of the report show them."""
    return ["Data", "Model", "Training", "Curves", "Evaluation", samples_heading(len(r["samples"])),
            "Machine"]  # fmt: skip


def markdown(r: dict) -> str:
    """The report as markdown, for pasting into an issue or a notebook."""
    lines, tables = [f"# {r['run']}", ""], sections(r)
    for name in order(r):
        if name == "Curves":  # pictures: the page has them, and metrics.csv their points
            continue
        lines += [f"## {name}", ""]
        if name in tables:
            lines += ["| | |", "|---|---|"]
            lines += [f"| {k} | {_strip(v)} |" for k, v in tables[name]] + [""]
            continue
        if r.get("samples_mixed") and r["samples"]:
            lines += [f"Drawn {r['samples_mixed']}.", ""]
        for s in r["samples"]:
            lines += [f"> {s['text'].strip()}", "", summary(s), ""]
        if not r["samples"]:
            lines += ["none: left out for the time budget", ""]
    return "\n".join(lines)


def _strip(v: str) -> str:
    return html.unescape(v.replace("<b>", "**").replace("</b>", "**")).replace("|", "\\|")
