// Eddy dashboard: a small single-page app over the runner's REST API.
// No build step and no dependencies: it must work offline on an edge box.
(function () {
  "use strict";

  const TOKEN_KEY = "eddy.token";
  const THEME_KEY = "eddy.theme";
  const POLL_MS = 1000;
  const HISTORY = 60; // sparkline points

  const state = {
    info: null,
    pipelines: [],
    alerts: { firing: [], history: [] },
    devices: [],
    rates: {},      // pipeline id -> [{t, in, rate}]
    detail: null,   // current pipeline detail
    tap: null,      // {id, ctrl, lines: []}
    connected: false,
    error: "",
  };

  // ---------- helpers ----------
  const $ = (sel) => document.querySelector(sel);
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function fmtNum(n) {
    if (n == null || isNaN(n)) return "–";
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
    if (Number.isInteger(n)) return String(n);
    return n.toFixed(1);
  }
  function fmtRate(r) { return r == null ? "–" : (r < 10 ? r.toFixed(1) : fmtNum(Math.round(r))) + "/s"; }
  function fmtDur(ns) {
    if (!ns) return "–";
    if (ns < 1e3) return ns + "ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 1 : 0) + "µs";
    if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 1 : 0) + "ms";
    return (ns / 1e9).toFixed(1) + "s";
  }
  function fmtBytes(b) {
    if (b == null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : b) + " " + u[i];
  }
  function isZeroTime(t) { return !t || t.startsWith("0001-01-01"); }
  function fmtTime(t) {
    if (isZeroTime(t)) return "–";
    const d = new Date(t);
    return d.toLocaleString(undefined, { hour12: false });
  }
  function fmtAgo(t) {
    if (isZeroTime(t)) return "–";
    const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
    if (s < 60) return Math.round(s) + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    if (s < 86400) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }
  function stateBadge(s) {
    const cls = { running: "b-ok", stopped: "b-muted", failed: "b-bad", starting: "b-info" }[s] || "b-muted";
    return `<span class="badge ${cls}">${esc(s || "unknown")}</span>`;
  }
  function sevBadge(s) {
    const cls = { critical: "b-bad", error: "b-bad", warning: "b-warn", info: "b-info" }[s] || "b-muted";
    return `<span class="badge ${cls}">${esc(s || "–")}</span>`;
  }
  function alertStateBadge(s) {
    return s === "firing" ? `<span class="badge b-bad">firing</span>` : `<span class="badge b-ok">${esc(s || "–")}</span>`;
  }
  function pipelineLink(id) {
    return `<a href="#/pipelines/${esc(id)}">${esc(id)}</a>`;
  }
  function sparkline(points, w, h) {
    w = w || 140; h = h || 28;
    const vals = points.map((p) => p.rate || 0);
    if (vals.length < 2) return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="throughput"></svg>`;
    const max = Math.max(1, ...vals);
    const step = w / (HISTORY - 1);
    const off = w - (vals.length - 1) * step;
    const xy = vals.map((v, i) => [off + i * step, h - 2 - (v / max) * (h - 4)]);
    const line = xy.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
    const area = line + ` L${xy[xy.length - 1][0].toFixed(1)} ${h} L${xy[0][0].toFixed(1)} ${h} Z`;
    return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="throughput, max ${fmtRate(max)}"><path class="area" d="${area}"/><path class="line" d="${line}"/></svg>`;
  }
  function totals(st) {
    const steps = st.steps || [];
    let errors = (st.source && st.source.errors) || 0;
    steps.forEach((s) => (errors += s.errors || 0));
    (st.sinks || []).forEach((s) => (errors += s.errors || 0));
    const out = (st.sinks || []).filter((s) => s.role === "sink").reduce((a, s) => a + (s.in || 0), 0);
    return { in: (st.source && st.source.in) || 0, out, errors };
  }
  function lastRate(id) {
    const h = state.rates[id];
    return h && h.length > 1 ? h[h.length - 1].rate : null;
  }

  // ---------- API ----------
  function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
  class APIError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (token()) headers.Authorization = "Bearer " + token();
    let resp;
    try {
      resp = await fetch(path, Object.assign({}, opts, { headers }));
    } catch (e) {
      setLive(false, "runner unreachable");
      throw e;
    }
    if (resp.status === 401) {
      askToken(token() ? "The saved token was refused by this runner. Paste a valid token." : "This runner requires a bearer token. Find it in the runner's token file (printed at first start).");
    }
    if (!resp.ok) {
      let code = "http_error", msg = resp.statusText;
      try { const j = await resp.json(); code = j.error.code; msg = j.error.message; } catch (_) { /* not JSON */ }
      throw new APIError(resp.status, code, msg);
    }
    setLive(true);
    if (resp.status === 204) return null;
    const ct = resp.headers.get("Content-Type") || "";
    return ct.includes("json") ? resp.json() : resp.text();
  }

  // stream reads a Server-Sent Event stream with fetch, so that the bearer
  // token travels in a header (EventSource cannot send one).
  async function stream(path, signal, onEvent) {
    const headers = { Accept: "text/event-stream" };
    if (token()) headers.Authorization = "Bearer " + token();
    const resp = await fetch(path, { headers, signal });
    if (resp.status === 401) { askToken("This runner requires a bearer token."); return; }
    if (!resp.ok || !resp.body) throw new Error("stream " + path + ": " + resp.status);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        let name = "message"; const data = [];
        block.split("\n").forEach((line) => {
          if (line.startsWith(":")) return;
          const c = line.indexOf(":");
          const f = c < 0 ? line : line.slice(0, c);
          let v = c < 0 ? "" : line.slice(c + 1);
          if (v.startsWith(" ")) v = v.slice(1);
          if (f === "event") name = v; else if (f === "data") data.push(v);
        });
        if (data.length) onEvent(name, data.join("\n"));
      }
    }
  }

  function setLive(ok, why) {
    state.connected = ok;
    const el = $("#live");
    el.className = "live " + (ok ? "ok" : "bad");
    el.querySelector("span").textContent = ok ? "live" : (why || "disconnected");
  }

  // ---------- token prompt ----------
  function askToken(why) {
    const d = $("#tokenDialog");
    $("#tokenWhy").textContent = why;
    if (!d.open) { d.showModal(); $("#tokenInput").focus(); }
  }
  $("#tokenForm").addEventListener("submit", () => {
    const v = $("#tokenInput").value.trim();
    if (v) localStorage.setItem(TOKEN_KEY, v);
    $("#tokenInput").value = "";
    state.info = null;
    refresh();
  });
  $("#tokenClear").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    $("#tokenDialog").close();
    state.info = null;
    refresh();
  });
  $("#tokenBtn").addEventListener("click", () => askToken("Paste an API token (admin or read-only). It is kept in this browser only."));

  // ---------- theme ----------
  function applyTheme(t) {
    document.documentElement.classList.toggle("dark", t === "dark");
  }
  const savedTheme = localStorage.getItem(THEME_KEY) ||
    (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  applyTheme(savedTheme);
  $("#theme").addEventListener("click", () => {
    const t = document.documentElement.classList.contains("dark") ? "light" : "dark";
    localStorage.setItem(THEME_KEY, t);
    applyTheme(t);
  });

  // ---------- data ----------
  function recordRates(list) {
    const now = Date.now();
    const seen = {};
    list.forEach((st) => {
      seen[st.id] = true;
      const h = state.rates[st.id] || (state.rates[st.id] = []);
      const cur = (st.source && st.source.in) || 0;
      const prev = h[h.length - 1];
      let rate = 0;
      if (prev && now > prev.t && cur >= prev.in) rate = ((cur - prev.in) * 1000) / (now - prev.t);
      h.push({ t: now, in: cur, rate: prev ? rate : null });
      if (h.length > HISTORY) h.shift();
    });
    Object.keys(state.rates).forEach((id) => { if (!seen[id]) delete state.rates[id]; });
  }

  async function refresh() {
    try {
      if (!state.info) {
        state.info = await api("/api/v1/info");
        $("#role").textContent = state.info.role + (state.info.readOnly ? " · managed by controller" : "");
      }
      const route = parseRoute();
      const jobs = [api("/api/v1/pipelines"), api("/api/v1/alerts")];
      if (route.name === "overview" || route.name === "devices") jobs.push(api("/api/v1/devices"));
      else jobs.push(Promise.resolve(null));
      if (route.name === "pipeline") jobs.push(api("/api/v1/pipelines/" + route.id));
      else jobs.push(Promise.resolve(null));
      if (route.name === "system") jobs.push(api("/api/v1/broker"), api("/api/v1/wal"), api("/api/v1/link"));
      const [pl, al, dv, det, br, wal, link] = await Promise.all(jobs);
      state.pipelines = pl.items || [];
      recordRates(state.pipelines);
      state.alerts = al;
      if (dv) state.devices = dv.items || [];
      state.detail = det;
      state.system = br ? { broker: br, wal, link } : null;
      // Container actions (runner/actions); a runner without them answers 404.
      state.actions = route.name === "alerts" ? await api("/api/v1/actions").catch(() => null) : state.actions;
      state.error = "";
    } catch (e) {
      state.error = e instanceof APIError ? e.message : "";
      if (e instanceof APIError && e.status === 404) state.detail = null;
    }
    render();
  }

  // ---------- routing ----------
  function parseRoute() {
    const h = location.hash.replace(/^#\/?/, "");
    const parts = h.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] === "pipelines" && parts.length >= 3) return { name: "pipeline", id: parts[1] + "/" + parts[2] };
    if (parts[0] === "alerts") return { name: "alerts" };
    if (parts[0] === "devices") return { name: "devices" };
    if (parts[0] === "system") return { name: "system" };
    return { name: "overview" };
  }
  window.addEventListener("hashchange", () => { stopTap(); state.detail = null; render(); refresh(); });

  // ---------- views ----------
  function render() {
    const route = parseRoute();
    document.querySelectorAll("#nav a").forEach((a) => {
      a.classList.toggle("active", a.dataset.route === route.name || (route.name === "pipeline" && a.dataset.route === "overview"));
    });
    const err = state.error ? `<div class="banner">${esc(state.error)}</div>` : "";
    let html = "";
    switch (route.name) {
      case "pipeline": html = viewPipeline(route.id); break;
      case "alerts": html = viewAlerts(); break;
      case "devices": html = viewDevices(); break;
      case "system": html = viewSystem(); break;
      default: html = viewOverview();
    }
    const main = $("#main");
    // Keep the tap's scroll position and the YAML selection: re-render
    // only the parts that change.
    const tapEl = main.querySelector(".tap");
    const tapScroll = tapEl ? tapEl.scrollTop : 0;
    main.innerHTML = err + html;
    const t2 = main.querySelector(".tap");
    if (t2) { t2.scrollTop = tapScroll; renderTap(); }
    if (route.name === "pipeline" && state.detail && (!state.tap || state.tap.id !== route.id)) startTap(route.id);
    document.title = route.name === "pipeline" ? route.id + " · Eddy" : "Eddy";
  }

  function viewOverview() {
    const list = state.pipelines;
    const running = list.filter((p) => p.state === "running").length;
    let rate = 0; list.forEach((p) => (rate += lastRate(p.id) || 0));
    let errors = 0; list.forEach((p) => (errors += totals(p).errors));
    const firing = state.alerts.firing || [];
    const devs = state.devices;
    const online = devs.filter((d) => d.state === "online").length;
    const cards = `<div class="cards">
      <div class="card"><div class="label">Pipelines</div><div class="value" data-k="pipelines-running">${running}<span class="muted"> / ${list.length}</span></div><div class="sub">running</div></div>
      <div class="card"><div class="label">Throughput</div><div class="value">${fmtRate(rate)}</div><div class="sub">records in, all pipelines</div></div>
      <div class="card"><div class="label">Errors</div><div class="value ${errors ? "errtext" : ""}">${fmtNum(errors)}</div><div class="sub">since start</div></div>
      <div class="card"><div class="label">Alerts firing</div><div class="value ${firing.length ? "errtext" : ""}" data-k="alerts-firing">${firing.length}</div><div class="sub">${firing.filter((a) => a.severity === "critical").length} critical</div></div>
      <div class="card"><div class="label">Devices</div><div class="value">${online}<span class="muted"> / ${devs.length}</span></div><div class="sub">online</div></div>
    </div>`;
    const rows = list.map((p) => {
      const t = totals(p);
      return `<tr data-pipeline="${esc(p.id)}">
        <td>${pipelineLink(p.id)}</td><td>${stateBadge(p.state)}</td>
        <td>${sparkline(state.rates[p.id] || [])}</td><td class="num">${fmtRate(lastRate(p.id))}</td>
        <td class="num" data-k="in">${fmtNum(t.in)}</td><td class="num" data-k="out">${fmtNum(t.out)}</td>
        <td class="num ${t.errors ? "errtext" : ""}">${fmtNum(t.errors)}</td><td class="num">${fmtNum(p.lag)}</td>
        <td class="muted">${fmtAgo(p.eventTime)}</td></tr>`;
    }).join("");
    const ptable = list.length ? `<table><thead><tr><th>Pipeline</th><th>State</th><th>Throughput</th><th class="num">Rate</th><th class="num">In</th><th class="num">Out</th><th class="num">Errors</th><th class="num">Lag</th><th>Event time</th></tr></thead><tbody>${rows}</tbody></table>`
      : `<div class="empty">No pipelines yet. Start one with <span class="mono">eddy run pipeline.yaml</span>.</div>`;
    const alerts = firing.length ? `<table><tbody>${firing.slice(0, 12).map((a) => `<tr><td>${sevBadge(a.severity)}</td><td><div>${esc(a.message || a.key)}</div><div class="muted">${pipelineLink(a.pipeline)} · ${fmtAgo(a.time)}</div></td></tr>`).join("")}</tbody></table>`
      : `<div class="empty">No alerts firing.</div>`;
    const devRows = devs.slice(0, 12).map((d) => `<tr><td>${devDot(d.state)}${esc(d.id)}</td><td class="muted">${esc(d.state || "unknown")}</td></tr>`).join("");
    return `<h1>Overview</h1>${cards}<div class="grid2"><div><div class="panel"><h2>Pipelines</h2>${ptable}</div></div>
      <div><div class="panel"><h2>Alerts firing</h2>${alerts}</div>
      <div class="panel"><h2>Devices</h2>${devs.length ? `<table><tbody>${devRows}</tbody></table>${devs.length > 12 ? `<a href="#/devices">all ${devs.length} devices →</a>` : ""}` : `<div class="empty">No devices declared.</div>`}</div></div></div>`;
  }

  function devDot(s) { return `<span class="dot ${s === "online" ? "on" : s === "offline" ? "off" : "unk"}"></span>`; }

  function nodeBox(s, extraCls) {
    const err = s.errors ? " haserr" : "";
    return `<div class="node ${extraCls}${err}" data-step="${esc(s.id)}">
      <div class="kind">${esc(s.kind)} · ${esc(s.role)}</div><div class="id">${esc(s.id)}</div>
      <dl><dt>in</dt><dd data-k="in">${fmtNum(s.in)}</dd><dt>out</dt><dd data-k="out">${fmtNum(s.out)}</dd>
      <dt>errors</dt><dd class="${s.errors ? "errtext" : ""}">${fmtNum(s.errors)}</dd>
      ${s.role === "step" ? `<dt>p50 / p99</dt><dd>${fmtDur(s.latencyP50)} / ${fmtDur(s.latencyP99)}</dd><dt>state</dt><dd>${fmtNum(s.stateSize)}</dd>` : ""}
      </dl></div>`;
  }

  function viewPipeline(id) {
    const d = state.detail;
    if (!d) return `<h1>${esc(id)}</h1><div class="empty">${state.error ? "" : "Loading…"}</div>`;
    const st = d.status;
    const canWrite = state.info && state.info.role === "admin" && !state.info.readOnly;
    const btn = canWrite ? (st.state === "running" ? `<button class="ghost" data-action="stop">Stop</button>` : `<button data-action="start">Start</button>`) : "";
    const t = totals(st);
    const cards = `<div class="cards">
      <div class="card"><div class="label">Throughput</div><div class="value">${fmtRate(lastRate(id))}</div>${sparkline(state.rates[id] || [], 160, 26)}</div>
      <div class="card"><div class="label">Records in</div><div class="value" data-k="pipeline-in">${fmtNum(t.in)}</div><div class="sub">cursor ${fmtNum(st.cursor)} · head ${fmtNum(st.head)}</div></div>
      <div class="card"><div class="label">Lag</div><div class="value">${fmtNum(st.lag)}</div><div class="sub">WAL records behind</div></div>
      <div class="card"><div class="label">Event time</div><div class="value">${isZeroTime(st.eventTime) ? "–" : new Date(st.eventTime).toLocaleTimeString(undefined, { hour12: false })}</div><div class="sub">${st.late} late events</div></div>
      <div class="card"><div class="label">Alerts firing</div><div class="value ${d.firing.length ? "errtext" : ""}">${d.firing.length}</div><div class="sub">in this pipeline</div></div>
    </div>`;
    const steps = (st.steps || []).map((s) => `<span class="arrow">→</span>` + nodeBox(s, "step")).join("");
    const sinks = (st.sinks || []).map((s) => nodeBox(s, "sink")).join("");
    const graph = `<div class="graph">${nodeBox(st.source, "source")}${steps}<span class="arrow">→</span><div class="sinks">${sinks}</div></div>`;
    const errs = [st.source].concat(st.steps || [], st.sinks || []).filter((s) => s && s.lastError);
    const errPanel = st.error || errs.length ? `<div class="panel"><h2>Last errors</h2>${st.error ? `<div class="banner">${esc(st.error)}</div>` : ""}<table><tbody>${errs.map((s) => `<tr><td class="mono">${esc(s.id)}</td><td class="errtext">${esc(s.lastError)}</td><td class="muted">${fmtAgo(s.lastErrorAt)}</td></tr>`).join("")}</tbody></table></div>` : "";
    const firing = d.firing.length ? `<div class="panel"><h2>Alerts firing</h2><table><tbody>${d.firing.map((a) => `<tr><td>${sevBadge(a.severity)}</td><td>${esc(a.message)}</td><td class="mono">${esc(a.key)}</td><td class="muted">${fmtAgo(a.time)}</td></tr>`).join("")}</tbody></table></div>` : "";
    return `<h1>${esc(id)} ${stateBadge(st.state)}<span class="muted mono">${esc((st.hash || "").slice(0, 12))}</span><span class="toolbar">${btn}</span></h1>
      ${cards}<div class="panel"><h2>Steps</h2>${graph}</div>${errPanel}${firing}
      <div class="grid2"><div class="panel"><h2>Live output <span class="muted" id="tapInfo"></span></h2><div class="tap" id="tap"></div></div>
      <div class="panel"><h2>YAML</h2><pre>${esc(d.source || "(source not kept)")}</pre></div></div>`;
  }

  function viewAlerts() {
    const firing = state.alerts.firing || [];
    const hist = state.alerts.history || [];
    const ftable = firing.length ? `<table><thead><tr><th>Severity</th><th>Message</th><th>Pipeline</th><th>Key</th><th>Since</th></tr></thead><tbody>${firing.map((a) => `<tr><td>${sevBadge(a.severity)}</td><td>${esc(a.message)}</td><td>${pipelineLink(a.pipeline)}</td><td class="mono">${esc(a.key)}</td><td class="muted">${fmtTime(a.fields && a.fields.started_at ? a.fields.started_at : a.time)}</td></tr>`).join("")}</tbody></table>` : `<div class="empty">No alerts firing.</div>`;
    const tl = hist.length ? `<ul class="timeline">${hist.map((a) => `<li><span class="muted mono">${fmtTime(a.time)}</span><span>${alertStateBadge(a.state)}</span><span>${sevBadge(a.severity)} ${esc(a.message || a.key)} <span class="muted">· ${pipelineLink(a.pipeline)}</span></span></li>`).join("")}</ul>` : `<div class="empty">No alerts yet.</div>`;
    return `<h1>Alerts</h1><div class="panel"><h2>Firing (${firing.length})</h2>${ftable}</div>${viewActions()}<div class="panel"><h2>Timeline</h2>${tl}</div>`;
  }

  // Recent container actions: the last result of each episode, newest first.
  function viewActions() {
    const a = state.actions;
    if (!a) return "";
    const last = new Map();
    (a.recent || []).forEach((r) => last.set(r.action + "\u0000" + r.episode, r));
    const rows = [...last.values()].reverse().slice(0, 20);
    const badge = (st) => {
      const cls = st === "exited" || st === "done" ? "b-ok" : st === "started" || st === "intent" ? "b-info" : st === "skipped" ? "b-warn" : "b-bad";
      return `<span class="badge ${cls}">${esc(st)}</span>`;
    };
    const detail = (r) => r.error ? `<span class="errtext">${esc(r.error)}</span>`
      : r.exit_code !== undefined ? `exit ${esc(String(r.exit_code))}${r.duration_ms ? ` · ${esc(String(r.duration_ms))} ms` : ""}${r.output ? `<div class="mono muted">${esc(r.output.slice(-200))}</div>` : ""}` : "";
    const table = rows.length ? `<table><thead><tr><th>State</th><th>Action</th><th>Key</th><th>Result</th><th>When</th></tr></thead><tbody>${rows.map((r) => `<tr><td>${badge(r.state)}</td><td class="mono">${esc(r.action)}<div class="muted">${esc(r.do)} ${esc(r.image || (r.targets || []).join(", "))}</div></td><td class="mono">${esc(r.key || "")}</td><td>${detail(r)}</td><td class="muted">${fmtTime(r.time)}</td></tr>`).join("")}</tbody></table>` : `<div class="empty">No container actions yet.</div>`;
    return `<div class="panel"><h2>Container actions <span class="muted">runtime ${esc(a.runtime || "not watched")}</span></h2>${table}</div>`;
  }

  function fmtVal(v) {
    if (!v || v.value === undefined) return `<span class="muted">–</span>`;
    let s = typeof v.value === "string" ? v.value : JSON.stringify(v.value);
    return `<span class="mono">${esc(s)}</span>`;
  }
  function viewDevices() {
    const devs = state.devices;
    if (!devs.length) return `<h1>Devices</h1><div class="panel"><div class="empty">No devices. Load KubeEdge Device files with <span class="mono">--devices</span>.</div></div>`;
    const cards = devs.map((d) => {
      const twins = Object.keys(d.twins || {}).sort().map((k) => {
        const t = d.twins[k];
        const exp = t.expected, act = t.actual;
        const sync = exp && act ? (JSON.stringify(exp.value) === JSON.stringify(act.value) ? `<span class="insync" title="reported matches desired">✓</span>` : `<span class="outsync" title="reported differs from desired">≠</span>`) : "";
        const last = Math.max((exp && exp.timestamp) || 0, (act && act.timestamp) || 0);
        return `<tr><td class="mono">${esc(k)}</td><td>${fmtVal(exp)}</td><td>${fmtVal(act)} ${sync}</td><td class="muted">${last ? fmtAgo(new Date(last).toISOString()) : "–"}</td></tr>`;
      }).join("");
      return `<div class="panel"><h2>${devDot(d.state)}${esc(d.id)} <span class="muted">${esc(d.state || "unknown")}${d.last_online ? " · last online " + esc(d.last_online) : ""}</span></h2>
        ${d.description ? `<div class="muted">${esc(d.description)}</div>` : ""}
        ${twins ? `<table><thead><tr><th>Property</th><th>Desired</th><th>Reported</th><th>Updated</th></tr></thead><tbody>${twins}</tbody></table>` : `<div class="empty">No twins.</div>`}</div>`;
    }).join("");
    return `<h1>Devices</h1><div class="devgrid">${cards}</div>`;
  }

  function viewSystem() {
    const s = state.system;
    if (!s) return `<h1>Broker &amp; WAL</h1><div class="empty">Loading…</div>`;
    const b = s.broker.stats, w = s.wal;
    const cards = `<div class="cards">
      <div class="card"><div class="label">MQTT clients</div><div class="value">${b.clients}</div><div class="sub">${b.sessions} sessions · ${b.subscriptions} subscriptions</div></div>
      <div class="card"><div class="label">Messages in / out</div><div class="value">${fmtNum(b.messagesIn)} / ${fmtNum(b.messagesOut)}</div><div class="sub">${fmtBytes(b.bytesIn)} in</div></div>
      <div class="card"><div class="label">WAL</div><div class="value">${fmtNum(w.records)}</div><div class="sub">${fmtBytes(w.bytes)} · offsets ${w.first}–${w.last}</div></div>
      <div class="card"><div class="label">Retention</div><div class="value ${w.full ? "errtext" : ""}">${w.full ? "FULL" : "ok"}</div><div class="sub">${fmtNum(w.retentionRemoved)} removed · ${fmtNum(w.retentionOverrun)} overrun</div></div>
      <div class="card"><div class="label">Link${s.link.node ? " · " + esc(s.link.node) : ""}</div><div class="value ${s.link.state === "disconnected" ? "errtext" : ""}">${esc(s.link.state)}</div><div class="sub">${s.link.hub ? `${esc(s.link.hub)} · outbox ${fmtNum(s.link.pending)} behind · ${fmtNum(s.link.forwarded)} forwarded${s.link.problems ? ` · <span class="errtext">${s.link.problems} plan problems</span>` : ""}` : "standalone"}</div></div>
    </div>`;
    const clients = s.broker.clients.length ? `<table><thead><tr><th>Client</th><th>User</th><th>Remote</th><th>State</th><th>Subscriptions</th><th class="num">Inflight</th></tr></thead><tbody>${s.broker.clients.map((c) => `<tr><td class="mono">${esc(c.id)}</td><td>${esc(c.username)}</td><td class="mono">${esc(c.remote)}</td><td>${c.connected ? '<span class="badge b-ok">connected</span>' : '<span class="badge b-muted">offline</span>'}</td><td class="mono">${esc(c.subscriptions.join(", "))}</td><td class="num">${c.inflight}</td></tr>`).join("")}</tbody></table>` : `<div class="empty">No MQTT clients connected.</div>`;
    const topics = s.broker.topics.length ? `<table><thead><tr><th>Topic / filter</th><th class="num">Subscribers</th><th>Retained</th></tr></thead><tbody>${s.broker.topics.map((t) => `<tr><td class="mono">${esc(t.name)}</td><td class="num">${t.subscribers}</td><td>${t.retained ? fmtBytes(t.retainedBytes) : ""}</td></tr>`).join("")}</tbody></table>` : `<div class="empty">No topics.</div>`;
    const cons = Object.keys(w.consumers || {}).sort().map((k) => `<tr><td class="mono">${esc(k)}</td><td class="num">${w.consumers[k]}</td><td class="num">${w.last + 1 - w.consumers[k]}</td></tr>`).join("");
    return `<h1>Broker &amp; WAL</h1>${cards}<div class="panel"><h2>Clients</h2>${clients}</div>
      <div class="grid2"><div class="panel"><h2>Topics</h2>${topics}</div><div class="panel"><h2>WAL consumers</h2>${cons ? `<table><thead><tr><th>Pipeline</th><th class="num">Offset</th><th class="num">Behind</th></tr></thead><tbody>${cons}</tbody></table>` : `<div class="empty">No consumers.</div>`}</div></div>`;
  }

  // ---------- tap ----------
  function startTap(id) {
    stopTap();
    const ctrl = new AbortController();
    const tap = { id, ctrl, lines: [], dropped: 0 };
    state.tap = tap;
    stream("/api/v1/pipelines/" + id + "/tap", ctrl.signal, (name, data) => {
      if (name === "dropped") { try { tap.dropped = JSON.parse(data).dropped; } catch (_) { /* ignore */ } }
      else if (name === "output") {
        tap.lines.unshift({ t: new Date(), data });
        if (tap.lines.length > 100) tap.lines.pop();
      }
      renderTap();
    }).catch(() => { /* aborted or lost; the next render restarts it */ if (state.tap === tap) state.tap = null; });
  }
  function stopTap() {
    if (state.tap) { state.tap.ctrl.abort(); state.tap = null; }
  }
  function renderTap() {
    const el = document.getElementById("tap");
    if (!el || !state.tap) return;
    const tap = state.tap;
    el.innerHTML = tap.lines.length ? tap.lines.map((l) => `<div><span class="t">${l.t.toLocaleTimeString(undefined, { hour12: false })}</span>${esc(l.data)}</div>`).join("")
      : `<div class="muted">Waiting for output…</div>`;
    const info = document.getElementById("tapInfo");
    if (info) info.textContent = `${tap.lines.length} shown` + (tap.dropped ? ` · ${tap.dropped} dropped (browser slower than the pipeline)` : "");
  }

  // ---------- actions ----------
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-action]");
    if (!b) return;
    const route = parseRoute();
    if (route.name !== "pipeline") return;
    b.disabled = true;
    try {
      await api("/api/v1/pipelines/" + route.id + "/" + b.dataset.action, { method: "POST" });
      stopTap();
    } catch (e) {
      state.error = e.message;
    }
    refresh();
  });

  refresh();
  setInterval(refresh, POLL_MS);
})();
