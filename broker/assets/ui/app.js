// Sluice console: live updates over the API the pages were rendered from. Plain JavaScript,
// no library. Requests that change something carry the page's CSRF token (auth.rs).
"use strict";
const csrf = document.querySelector('meta[name="csrf"]')?.content || "";
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const pretty = (v) => (v === undefined || v === null ? "" : JSON.stringify(v, null, 2));

async function api(method, path, body) {
  const res = await fetch(path, {
    method, credentials: "same-origin",
    headers: { "content-type": "application/json", "x-sluice-csrf": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* no body */ }
  return { ok: res.ok, status: res.status, data };
}
// The native API's {"error": {"message"}}, or a face's own {"message"}.
const errorText = (r) =>
  (r.data && r.data.error && r.data.error.message) || (r.data && r.data.message) || `HTTP ${r.status}`;

// Overview: counts every 2 s, rates per minute from the event counters' deltas.
function overview() {
  const table = $("#kinds[data-live]");
  if (!table) return;
  let last = null;
  const tick = async () => {
    const r = await api("GET", table.dataset.live);
    if (!r.ok) return;
    const now = Date.now();
    for (const k of r.data.kinds) {
      const row = $(`tr[data-kind="${CSS.escape(k.kind)}"]`, table);
      if (!row) continue;
      for (const [f, n] of Object.entries(k.counts)) {
        const cell = $(`[data-f="${f}"]`, row);
        if (cell) cell.textContent = n;
      }
      const prev = last && last.stats[k.kind];
      for (const ev of ["completed", "failed"]) {
        const cell = $(`[data-rate="${ev}"]`, row);
        if (cell && prev && k.stats) {
          const per = ((k.stats[ev] - prev[ev]) * 60000) / (now - last.at);
          cell.textContent = per.toFixed(0);
        }
      }
    }
    last = { at: now, stats: Object.fromEntries(r.data.kinds.map((k) => [k.kind, k.stats])) };
  };
  tick();
  setInterval(tick, 2000);
}

// Job page: the live event stream (log lines, progress, state), artifacts, actions.
function jobPage() {
  const box = $("#job");
  if (!box) return;
  const id = box.dataset.id;
  const log = $("#log");
  const setStatus = (s) => {
    const el = $("#status");
    el.textContent = s;
    el.className = `status ${s}`;
    box.dataset.status = s;
  };
  const terminal = (s) => ["COMPLETED", "FAILED", "TIMED_OUT", "CANCELED"].includes(s);
  const showJob = (j) => {
    setStatus(j.status);
    $("#attempt").textContent = `${j.attempt} of ${j.max_attempts}`;
    if (j.finished) $("#finished").textContent = j.finished;
    if (j.result !== undefined) $("#result").textContent = pretty(j.result);
    // A solver's answer arrived while the page was open: draw its configurations (server side).
    if (j.result && Array.isArray(j.result.configs) && !$("#configurations")) location.reload();
    if (j.progress !== undefined) showProgress(j.progress);
    if (j.error) { const e = $("#job-error"); e.textContent = j.error; e.hidden = false; }
    $$("#actions [data-action=stop]").forEach((b) => (b.hidden = terminal(j.status)));
    $$("#actions [data-action=retry]").forEach((b) => (b.hidden = !["FAILED", "TIMED_OUT", "CANCELED"].includes(j.status)));
  };
  const showProgress = (p) => {
    $("#progress").textContent = pretty(p);
    const bar = $("#progress-bar");
    const done = p && (p.done ?? p.count), total = p && (p.total ?? p.of);
    if (typeof done === "number" && typeof total === "number" && total > 0) {
      bar.max = total; bar.value = done; bar.hidden = false;
    }
  };
  const timeline = (f) => {
    const li = document.createElement("li");
    li.innerHTML = `<time></time> <span class="status"></span> `;
    li.querySelector("time").textContent = f.at || "";
    const s = li.querySelector(".status");
    s.textContent = f.status; s.classList.add(f.status);
    li.append(f.event);
    $("#timeline").append(li);
  };
  const es = new EventSource(`/jobs/${id}/events`);
  $("#log-state").textContent = "live";
  es.addEventListener("snapshot", (e) => showJob(JSON.parse(e.data)));
  es.onmessage = null;
  const state = (e) => {
    const f = JSON.parse(e.data);
    if (f.event === "log") {
      log.textContent += (f.lines || "") + "\n";
      log.scrollTop = log.scrollHeight;
    } else if (f.event === "progress") {
      try { showProgress(JSON.parse(f.progress)); } catch (_) { showProgress(f.progress); }
    } else {
      if (f.status) setStatus(f.status);
      timeline(f);
      // The job as it is now (result, error, attempts), whatever the stream sends last.
      api("GET", `/jobs/${id}`).then((r) => r.ok && showJob(r.data));
    }
  };
  for (const name of ["submitted", "claimed", "progress", "log", "completed", "failed", "timed_out",
    "canceled", "retried", "retry_scheduled", "lost", "released", "promoted", "ready", "scheduled",
    "stop_requested", "locked", "unlocked"]) es.addEventListener(name, state);
  es.onerror = () => {
    if (terminal(box.dataset.status)) { es.close(); $("#log-state").textContent = "ended"; }
  };
  loadArtifacts(id);
  for (const b of $$("#actions [data-action]")) {
    b.addEventListener("click", async () => {
      if (!window.confirm(b.dataset.confirm)) return;
      const msg = $("#action-message");
      msg.className = "message"; msg.textContent = `${b.dataset.action}…`;
      const r = await api("POST", `/jobs/${id}/${b.dataset.action}`);
      if (r.ok) {
        msg.textContent = `${b.dataset.action}: ${r.data.status}`;
        setStatus(r.data.status);
        if (["lock", "unlock", "retry"].includes(b.dataset.action)) setTimeout(() => location.reload(), 400);
      } else {
        msg.className = "message bad"; msg.textContent = errorText(r);
      }
    });
  }
}

async function loadArtifacts(id) {
  const ul = $("#artifacts");
  const r = await api("GET", `/jobs/${id}/artifacts`);
  ul.textContent = "";
  const list = (r.ok && (r.data.artifacts || r.data)) || [];
  if (!Array.isArray(list) || list.length === 0) {
    ul.innerHTML = `<li class="muted">none</li>`;
    return;
  }
  for (const a of list) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/jobs/${id}/artifacts/${encodeURIComponent(a.name)}`;
    link.textContent = a.name;
    link.setAttribute("download", a.name);
    li.append(link, ` (${a.size ?? "?"} bytes)`);
    ul.append(li);
  }
}

// Workflow page: recolour the graph's nodes every second until the workflow ends.
function workflowPage() {
  const svg = $("#dag[data-workflow]");
  if (!svg) return;
  const poll = async () => {
    const r = await api("GET", `/workflows/${svg.dataset.workflow}`);
    if (!r.ok) return;
    for (const run of r.data.runs) {
      const g = $(`g.node[data-job="${run.job}"]`, svg);
      if (!g) continue;
      g.setAttribute("class", `node ${run.status}`);
      $(".state", g).textContent = run.status;
    }
    const s = $("#wf-status");
    s.textContent = r.data.status; s.className = `status ${r.data.status}`;
    $("#wf-completed").textContent = r.data.completed;
    if (!["COMPLETED", "CANCELLED"].includes(r.data.status)) setTimeout(poll, 1000);
  };
  poll();
}

// Pipeline page: start a run (the Workflow Service face's POST .../runs) and open its job.
function pipelinePage() {
  const b = $("#start-run");
  if (!b) return;
  b.addEventListener("click", async () => {
    if (!window.confirm(b.dataset.confirm)) return;
    const msg = $("#action-message");
    msg.className = "message"; msg.textContent = "starting…";
    const r = await api("POST", `/v1/pipelines/${b.dataset.pipeline}/runs`, {});
    if (r.ok) { location.href = `/ui/jobs/${r.data.uuid}`; return; }
    msg.className = "message bad"; msg.textContent = errorText(r);
  });
}

// Submit: the browser's own checks (from the schema: required, min, max, pattern, enum) and
// JSON syntax before sending; the API's schema errors (400 "params.<field>: ...") shown at
// their field after.
function submitPage() {
  const form = $("#submit-form");
  if (!form) return;
  const fieldError = (name, text) => {
    const slot = $(`[data-error-for="${CSS.escape(name)}"]`, form);
    const box = slot && slot.closest(".field");
    if (slot) slot.textContent = text;
    if (box) box.classList.toggle("invalid", !!text);
    return !!slot;
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $$(".field-error", form).forEach((e) => (e.textContent = ""));
    $$(".field.invalid", form).forEach((e) => e.classList.remove("invalid"));
    const general = $("#submit-error");
    general.hidden = true;
    let params = {}, ok = true;
    for (const input of $$("[data-param]", form)) {
      const name = input.dataset.param, type = input.dataset.type;
      if (input.type !== "hidden" && !input.checkValidity()) {
        fieldError(name || "params", input.validationMessage); ok = false; continue;
      }
      const raw = input.value;
      if (type === "boolean") { params[name] = input.checked; continue; }
      if (raw === "") continue;
      let v = raw;
      if (type === "integer" || type === "number") v = Number(raw);
      if (type === "json") {
        try { v = JSON.parse(raw); } catch (e) { fieldError(name || "params", `not JSON: ${e.message}`); ok = false; continue; }
      }
      if (name === "") params = v; else params[name] = v;
    }
    if (!ok) return;
    const r = await api("POST", "/jobs", { executor: form.dataset.executor, params });
    if (r.ok) { location.href = `/ui/jobs/${r.data.id}`; return; }
    const text = errorText(r);
    let shown = false;
    for (const part of text.split("; ")) {
      const m = part.match(/params(?:\.([A-Za-z0-9_\-]+))?[^:]*: (.*)/);
      if (m) shown = fieldError(m[1] || "params", m[2]) || shown;
    }
    if (!shown) { general.textContent = text; general.hidden = false; }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  overview();
  jobPage();
  workflowPage();
  pipelinePage();
  submitPage();
});
