// wordgpt's page: generate (streamed, copied spans marked), runs (curves, side by side,
// reports), words (nearest words and a labelled map). Every costly call is a JSON POST.
"use strict";

const $ = (id) => document.getElementById(id);
const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939"];
let runs = [];
let controller = null;
let lastSeed = null;
let partner = null;  // what the last generation mixed in (the meta event says)

async function call(url, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(url, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(readable(data.detail) || `${r.status} ${r.statusText}`);
  return data;
}

function readable(detail) {
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(-1)[0]}: ${d.msg}`).join("; ");
  return JSON.stringify(detail);
}

function show(view) {
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${view}`));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  if (view === "runs") loadRuns();
}

function svgEl(svg, tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  svg.appendChild(el);
  return el;
}

// ---------------------------------------------------------------- generate

function settings() {
  // The inputs' own bounds (min, max, step) are checked here, before anything is sent.
  const body = { run: $("run").value, prompt: $("prompt").value };
  for (const k of ["temperature", "top_k", "top_p", "max_new_tokens", "seed"]) {
    const el = $(k);
    if (el.value === "") continue;
    if (!el.checkValidity()) {
      const label = el.parentElement.firstChild.textContent.trim();
      throw new Error(`${label}: ${el.validationMessage}`);
    }
    body[k] = Number(el.value);
  }
  body.ngram = $("ngram").checked;
  return body;
}

function markUnknown(prompt, unknown) {
  const el = $("out-prompt");
  el.textContent = "";
  if (!unknown.length) { el.textContent = prompt; return; }
  const esc = unknown.map((w) => w.trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).filter(Boolean);
  const re = new RegExp(`(${esc.join("|")})`, "gi");
  for (const part of prompt.split(re)) {
    const span = document.createElement("span");
    span.textContent = part;
    if (esc.length && new RegExp(`^(${esc.join("|")})$`, "i").test(part)) {
      span.className = "unk";
      span.title = "not in the vocabulary: read as <unk>";
    }
    el.appendChild(span);
  }
}

function markCopies(text, spans) {
  // spans: [{start, end, source, where}] in characters of the generated text
  const out = $("out-text");
  out.textContent = "";
  let at = 0;
  for (const s of spans) {
    if (s.start > at) out.appendChild(document.createTextNode(text.slice(at, s.start)));
    const mark = document.createElement("mark");
    mark.className = "copy";
    mark.textContent = text.slice(s.start, s.end);
    mark.title = `copied from the training text (${s.where}):\n…${s.source}…`;
    out.appendChild(mark);
    at = s.end;
  }
  if (at < text.length) out.appendChild(document.createTextNode(text.slice(at)));
}

async function readEvents(r, on) {
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = (block.match(/^event: (.*)$/m) || [])[1];
      on(event, JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}"));
    }
  }
}

async function generate() {
  $("form-error").hidden = true;
  let body;
  try { body = settings(); } catch (e) { $("form-error").textContent = e.message; $("form-error").hidden = false; return; }
  $("out-text").textContent = "";
  $("out-prompt").textContent = body.prompt;
  $("unknown").hidden = $("copies").hidden = $("reuse-seed").hidden = true;
  $("status").textContent = "generating…";
  $("generate").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  let pieces = 0, text = "";
  try {
    const r = await fetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!r.ok) throw new Error(readable((await r.json().catch(() => ({}))).detail) || r.statusText);
    await readEvents(r, (event, data) => {
      if (event === "meta") {
        lastSeed = data.seed;
        partner = data.partner;
        markUnknown(body.prompt, data.unknown);
        if (data.unknown.length) {
          $("unknown").hidden = false;
          $("unknown").textContent = `Not in the vocabulary, read as <unk>: ${data.unknown.join(", ")}`;
        }
      } else if (event === "token") {
        text += data.text;
        $("out-text").textContent = text;
        pieces += 1;
      } else if (event === "copies") {
        markCopies(text, data.spans);
        $("copies").hidden = false;
        $("copies").textContent = data.summary;
      } else if (event === "done") {
        $("status").textContent = `${data.pieces} pieces in ${data.seconds}s (${data.stopped}) · seed ${data.seed}` + (partner ? ` · ${partner}` : "");
        $("reuse-seed").hidden = false;
      }
    });
  } catch (e) {
    $("status").textContent = e.name === "AbortError" ? `stopped after ${pieces} pieces · seed ${lastSeed}` : `error: ${e.message}`;
    if (e.name === "AbortError") $("reuse-seed").hidden = false;
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

// ---------------------------------------------------------------- runs

const fmt = (v, d = 4) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toFixed(d) : v);
const ticked = new Set();
const NEIGHBORS = 12;  // the list's words, and the map marks those of them on it

async function loadRuns() {
  runs = await call("/api/runs");
  const tbody = $("runs-table").querySelector("tbody");
  tbody.textContent = "";
  for (const r of runs) {
    const tr = document.createElement("tr");
    const tick = document.createElement("input");
    tick.type = "checkbox";
    tick.className = "tick";
    tick.checked = ticked.has(r.name);
    tick.addEventListener("click", (ev) => { ev.stopPropagation(); toggle(r.name, tick.checked); });
    const first = document.createElement("td");
    first.appendChild(tick);
    tr.appendChild(first);
    const cells = [r.name, r.dataset, r.tokenizer, r.preset || "–", r.shape,
      r.params ? r.params.toLocaleString() : "–", (r.steps ?? 0).toLocaleString(), fmt(r.best_val_loss),
      r.val_bits_per_char === null ? "–" : fmt(r.val_bits_per_char) + (r.bpc_measured ? "" : " (est.)")
        + (r.gpt_bits_per_char == null ? "" : ` (GPT alone ${fmt(r.gpt_bits_per_char)})`),
      r.val_unk_share === null ? "–" : (100 * r.val_unk_share).toFixed(2) + " %"];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => showRun(r.name, tr));
    tbody.appendChild(tr);
  }
}

async function toggle(name, on) {
  if (on) ticked.add(name); else ticked.delete(name);
  await drawCompare();
}

async function drawCompare() {
  $("compare").hidden = ticked.size === 0;
  if (!ticked.size) return;
  const key = $("compare-x").value;
  const series = [];
  for (const name of ticked) {
    const r = await call(`/api/runs/${encodeURIComponent(name)}`);
    const pts = r.metrics.map((m) => [+m[key], +m.val_bits_per_char]).filter((p) => Number.isFinite(p[1]));
    series.push({ name, pts });
  }
  lineChart($("compare-chart"), series, key === "tokens" ? "tokens seen" : "seconds of training", "val bits/char");
}

async function showRun(name, row) {
  document.querySelectorAll("#runs-table tr").forEach((t) => t.classList.remove("selected"));
  if (row) row.classList.add("selected");
  const r = await call(`/api/runs/${encodeURIComponent(name)}`);
  $("run-detail").hidden = false;
  $("run-name").textContent = name;
  $("run-config").textContent = JSON.stringify(r.config, null, 2);
  $("run-report").hidden = !r.has_report;
  $("run-report").href = `/api/runs/${encodeURIComponent(name)}/report.html`;
  const steps = (key) => r.metrics.map((m) => [+m.step, +m[key]]);
  lineChart($("loss-chart"), [{ name: "train", pts: steps("train_loss") }, { name: "val", pts: steps("val_loss") }],
    "step", "loss (nats per token)");
  $("samples").innerHTML = '<li class="muted">generating samples…</li>';
  call("/api/samples", { run: name }).then((s) => {
    $("samples").textContent = "";
    for (const t of s.samples) {
      const li = document.createElement("li");
      li.textContent = t;
      $("samples").appendChild(li);
    }
  }).catch((e) => { $("samples").textContent = `error: ${e.message}`; });
}

function lineChart(svg, series, xlabel, ylabel) {
  svg.textContent = "";
  const all = series.flatMap((s) => s.pts).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (!all.length) return;
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), m = { l: 55, r: 150, t: 30, b: 38 };
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
  const y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]), y0 + 1e-6);
  const x = (v) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const y = (v) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svgEl(svg, "line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: "#eee" });
    svgEl(svg, "text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6e6e73" }, v.toFixed(2));
  }
  svgEl(svg, "text", { x: (W - m.r + m.l) / 2, y: H - 8, "text-anchor": "middle", "font-size": 12, fill: "#6e6e73" }, xlabel);
  svgEl(svg, "text", { x: 12, y: 14, "font-size": 11, fill: "#6e6e73", class: "axis-title" }, ylabel);  // above the top value
  series.forEach((s, i) => {
    const color = series.length === 2 && s.name === "val" ? "#a0282d" : PALETTE[i % PALETTE.length];
    const d = s.pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svgEl(svg, "path", { d, fill: "none", stroke: color, "stroke-width": 2, class: `curve ${s.name}` });
    svgEl(svg, "text", { x: W - m.r + 8, y: m.t + 14 + i * 16, "font-size": 12, fill: color }, s.name);
  });
  svgEl(svg, "text", { x: m.l, y: H - 22, "font-size": 11, fill: "#6e6e73" }, Math.round(x0).toLocaleString());
  svgEl(svg, "text", { x: W - m.r, y: H - 22, "text-anchor": "end", "font-size": 11, fill: "#6e6e73" }, Math.round(x1).toLocaleString());
}

// ---------------------------------------------------------------- words

function wordsRequest() {
  return { run: $("words-run").value, source: $("words-source").value, query: $("query").value };
}

async function busy(label, work) {
  $("words-status").textContent = label;
  $("words-status").classList.add("loading");
  try { await work(); $("words-status").textContent = ""; } catch (e) { $("words-status").textContent = `error: ${e.message}`; } finally { $("words-status").classList.remove("loading"); }
}

async function nearest() {
  const list = $("neighbors-list");
  list.textContent = "";
  await busy("looking…", async () => {
    const r = await call("/api/words/neighbors", { ...wordsRequest(), n: NEIGHBORS });
    for (const [w, s] of r.neighbors) {
      const li = document.createElement("li");
      li.textContent = `${w}  ${s.toFixed(3)}`;
      list.appendChild(li);
    }
  });
}

async function tsne() {
  await busy("drawing the map (t-SNE takes a few seconds the first time)…", async () => {
    drawMap($("map"), await call("/api/words/map", { ...wordsRequest(), n: NEIGHBORS }));
  });
}

function drawMap(svg, m) {
  svg.textContent = "";
  svg.hidden = false;
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), pad = 20;
  const xs = m.points.map((p) => p[0]), ys = m.points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (W - 2 * pad);
  const sy = (v) => pad + ((v - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  m.points.forEach((p, i) => {
    const dot = svgEl(svg, "circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: PALETTE[m.clusters[i] % PALETTE.length], "fill-opacity": 0.55, class: "dot" });
    svgEl(dot, "title", {}, m.words[i]);
  });
  // Labels never overlap: the queried word's first, then its neighbours', then the others';
  // each tries four places around its dot, and one that fits nowhere is left out (its dot
  // keeps a tooltip).
  const placed = [];
  const label = (i, size, attrs, gap, always = false) => {
    const [px, py] = [sx(m.points[i][0]), sy(m.points[i][1])];
    for (const [dx, dy, anchor] of [[gap, -gap, "start"], [gap, gap + size, "start"], [-gap, -gap, "end"], [-gap, gap + size, "end"]]) {
      const text = svgEl(svg, "text", { x: px + dx, y: py + dy, "font-size": size, "text-anchor": anchor, ...attrs }, m.words[i]);
      const b = text.getBBox();
      const box = [b.x - 1, b.y - 1, b.x + b.width + 1, b.y + b.height + 1];
      const inside = box[0] >= 0 && box[1] >= 0 && box[2] <= W && box[3] <= H;
      if (inside && !placed.some((o) => box[0] < o[2] && o[0] < box[2] && box[1] < o[3] && o[1] < box[3])) {
        placed.push(box);
        return;
      }
      if (!(always && dx < 0 && dy > 0)) text.remove();  // the queried word's stays, as a last resort
    }
  };
  const near = new Set(m.neighbors);
  if (m.query !== null) {
    const [px, py] = m.points[m.query];
    svgEl(svg, "circle", { cx: sx(px), cy: sy(py), r: 9, fill: "none", stroke: "#000", "stroke-width": 2, class: "query" });
    label(m.query, 15, { "font-weight": "bold", class: "query-label" }, 11, true);
  }
  for (const i of near) label(i, 12, { fill: "#a0282d", class: "neighbor" }, 3);
  for (const i of m.labels) if (i !== m.query && !near.has(i)) label(i, 10, { class: "label" }, 3);
}

// ---------------------------------------------------------------- start

async function start() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => show(t.dataset.view)));
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("reuse-seed").addEventListener("click", () => { $("seed").value = lastSeed; $("reuse-seed").hidden = true; });
  $("neighbors").addEventListener("click", nearest);
  $("tsne").addEventListener("click", tsne);
  $("compare-x").addEventListener("change", drawCompare);
  const h = await call("/api/health");
  for (const k of ["temperature", "top_k", "top_p", "max_new_tokens"]) {
    if (h.defaults[k] !== null) $(k).value = h.defaults[k];
  }
  $("max_new_tokens").max = h.limits.max_new_tokens;
  $("temperature").max = h.limits.temperature;
  $("prompt").maxLength = h.limits.prompt_chars;
  runs = await call("/api/runs");
  for (const r of runs) {
    $("run").add(new Option(`${r.name} (${r.tokenizer})`, r.name));
    $("words-run").add(new Option(r.name + (r.has_vectors ? " (+ vectors)" : ""), r.name));
  }
  $("health").textContent = `${h.runs} run(s) · wordgpt ${h.version}`;
  if (!runs.length) $("status").textContent = "no runs found: train one (make demo) and reload";
}

start();
