// wordgpt's page: generate (streamed), runs (loss curves drawn from metrics.csv), words.
"use strict";

const $ = (id) => document.getElementById(id);
let runs = [];
let controller = null;

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail ? JSON.stringify(body.detail) : r.statusText);
  return body;
}

function show(view) {
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === `view-${view}`));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  if (view === "runs") loadRuns();
}

// ---------------------------------------------------------------- generate

function settings() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  const body = { run: $("run").value, prompt: $("prompt").value };
  for (const k of ["temperature", "top_k", "top_p", "max_new_tokens", "seed"]) {
    const v = num(k);
    if (v !== null) body[k] = v;
  }
  return body;
}

function markUnknown(prompt, unknown) {
  const el = $("out-prompt");
  el.textContent = "";
  if (!unknown.length) { el.textContent = prompt; return; }
  const re = new RegExp(`(${unknown.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "g");
  for (const part of prompt.split(re)) {
    const span = document.createElement("span");
    span.textContent = part;
    if (unknown.includes(part)) { span.className = "unk"; span.title = "not in the vocabulary: read as <unk>"; }
    el.appendChild(span);
  }
}

async function generate() {
  const body = settings();
  $("out-text").textContent = "";
  $("out-prompt").textContent = body.prompt;
  $("unknown").hidden = true;
  $("status").textContent = "generating…";
  $("generate").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  let pieces = 0;
  try {
    const r = await fetch("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!r.ok) {
      const err = await r.json().catch(() => ({}));
      throw new Error(typeof err.detail === "string" ? err.detail : JSON.stringify(err.detail));
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = (block.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (event === "meta") {
          markUnknown(body.prompt, data.unknown);
          if (data.unknown.length) {
            $("unknown").hidden = false;
            $("unknown").textContent = `Not in the vocabulary, read as <unk>: ${data.unknown.join(", ")}`;
          }
        } else if (event === "token") {
          $("out-text").textContent += data.text;
          pieces += 1;
        } else if (event === "done") {
          $("status").textContent = `${data.pieces} pieces in ${data.seconds}s (${data.stopped})`;
        }
      }
    }
  } catch (e) {
    $("status").textContent = e.name === "AbortError" ? `stopped after ${pieces} pieces` : `error: ${e.message}`;
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

function stop() {
  if (controller) controller.abort();
}

// ---------------------------------------------------------------- runs

const fmt = (v, d = 4) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toFixed(d) : v);

async function loadRuns() {
  runs = await getJSON("/api/runs");
  const tbody = $("runs-table").querySelector("tbody");
  tbody.textContent = "";
  for (const r of runs) {
    const tr = document.createElement("tr");
    const cells = [r.name, r.dataset, r.tokenizer, r.preset || "–", r.shape,
      r.params ? r.params.toLocaleString() : "–", r.steps, fmt(r.best_val_loss),
      r.val_bits_per_char === null ? "–" : fmt(r.val_bits_per_char) + (r.bpc_measured ? "" : " (est.)")];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => showRun(r.name, tr));
    tbody.appendChild(tr);
  }
}

async function showRun(name, row) {
  document.querySelectorAll("#runs-table tr").forEach((t) => t.classList.remove("selected"));
  if (row) row.classList.add("selected");
  const r = await getJSON(`/api/runs/${encodeURIComponent(name)}`);
  $("run-detail").hidden = false;
  $("run-name").textContent = name;
  $("run-config").textContent = JSON.stringify(r.config, null, 2);
  drawLoss($("loss-chart"), r.metrics);
  $("samples").innerHTML = '<li class="muted">generating samples…</li>';
  getJSON(`/api/runs/${encodeURIComponent(name)}/samples`).then((s) => {
    $("samples").textContent = "";
    for (const t of s.samples) {
      const li = document.createElement("li");
      li.textContent = t;
      $("samples").appendChild(li);
    }
  }).catch((e) => { $("samples").textContent = `error: ${e.message}`; });
}

function drawLoss(svg, rows) {
  const NS = "http://www.w3.org/2000/svg";
  svg.textContent = "";
  if (!rows.length) return;
  const W = +svg.getAttribute("width"), H = +svg.getAttribute("height"), m = { l: 50, r: 15, t: 15, b: 35 };
  const steps = rows.map((r) => +r.step);
  const all = rows.flatMap((r) => [+r.train_loss, +r.val_loss]).filter(Number.isFinite);
  const x0 = Math.min(...steps), x1 = Math.max(...steps, x0 + 1);
  const y0 = Math.min(...all), y1 = Math.max(...all, y0 + 1e-6);
  const x = (s) => m.l + ((s - x0) / (x1 - x0)) * (W - m.l - m.r);
  const y = (v) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    add("line", { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: "#eee" });
    add("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6e6e73" }, v.toFixed(2));
  }
  add("text", { x: W / 2, y: H - 8, "text-anchor": "middle", "font-size": 12, fill: "#6e6e73" }, "step");
  const series = [["train_loss", "#1f6fb2", "train"], ["val_loss", "#a0282d", "val"]];
  series.forEach(([key, color, label], i) => {
    const d = rows.map((r, j) => `${j ? "L" : "M"}${x(+r.step).toFixed(1)},${y(+r[key]).toFixed(1)}`).join(" ");
    add("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: `curve ${label}` });
    add("text", { x: W - m.r - 60, y: m.t + 14 + i * 16, "font-size": 12, fill: color }, label);
  });
  add("text", { x: m.l, y: H - 8, "font-size": 11, fill: "#6e6e73" }, String(x0));
  add("text", { x: W - m.r, y: H - 8, "text-anchor": "end", "font-size": 11, fill: "#6e6e73" }, String(x1));
}

// ---------------------------------------------------------------- words

async function nearest() {
  const list = $("neighbors-list");
  list.textContent = "";
  try {
    const r = await getJSON(`/api/runs/${encodeURIComponent($("words-run").value)}/neighbors?q=${encodeURIComponent($("query").value)}`);
    for (const [w, s] of r.neighbors) {
      const li = document.createElement("li");
      li.textContent = `${w}  ${s.toFixed(3)}`;
      list.appendChild(li);
    }
  } catch (e) {
    list.textContent = `error: ${e.message}`;
  }
}

function tsne() {
  const f = $("tsne-frame");
  f.hidden = false;
  f.src = `/api/runs/${encodeURIComponent($("words-run").value)}/tsne`;
}

// ---------------------------------------------------------------- start

async function start() {
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => show(t.dataset.view)));
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", stop);
  $("neighbors").addEventListener("click", nearest);
  $("tsne").addEventListener("click", tsne);
  const h = await getJSON("/api/health");
  for (const k of ["temperature", "top_k", "top_p", "max_new_tokens"]) {
    if (h.defaults[k] !== null) $(k).value = h.defaults[k];
  }
  $("max_new_tokens").max = h.limits.max_new_tokens;
  runs = await getJSON("/api/runs");
  for (const r of runs) {
    $("run").add(new Option(`${r.name} (${r.tokenizer})`, r.name));
    if (r.has_vectors) $("words-run").add(new Option(r.name, r.name));
  }
  $("health").textContent = `${h.runs} run(s) · wordgpt ${h.version}`;
  if (!runs.length) $("status").textContent = "no runs found: train one (make demo) and reload";
}

start();
