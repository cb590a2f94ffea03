// callvault dashboard: live calls (server-sent events), call search, one call's page with its
// audio, waveform per channel, streams and SIP ladder. Plain DOM, no external assets.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const view = $("#view");
let live = { capturing: false, calls: [] };
let liveTimer = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function mosClass(m) {
  if (m === null || m === undefined) return "muted";
  return m >= 4.0 ? "good" : m >= 3.6 ? "fair" : "poor";
}
const fmt = (x, d = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
}
const when = (t) => (t ? new Date(t).toLocaleString() : "–");

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

// ---- live updates -------------------------------------------------------------------------

function connect() {
  const conn = $("#conn");
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("active", (ev) => {
    live = JSON.parse(ev.data);
    conn.textContent = live.capturing ? "live" : "not capturing";
    conn.className = "conn on";
    if (typeof view.onlive === "function") view.onlive();
  });
  source.onerror = () => {
    conn.textContent = "reconnecting…";
    conn.className = "conn off";
  };
}

// ---- pages --------------------------------------------------------------------------------

function sideCells(s) {
  return [
    el("td", {}, s.codec || "–"),
    el("td", { class: "num " + mosClass(s.mos) }, fmt(s.mos)),
    el("td", { class: "num" }, fmt(s.loss_pct, 1) + "%"),
    el("td", { class: "num" }, fmt(s.jitter_ms, 1)),
  ];
}

function liveTable() {
  const head = el("tr", {}, ["From", "To", "Started", "Media", "Caller codec", "MOS", "Loss", "Jitter ms",
    "Callee codec", "MOS", "Loss", "Jitter ms"].map((h) => el("th", {}, h)));
  const rows = live.calls.map((c) =>
    el("tr", { "data-call-id": c.call_id }, el("td", {}, c.from || "–"), el("td", {}, c.to || "–"),
      el("td", {}, when(c.start)),
      // A call whose recording is paused (PCI DSS) says so beside its media time.
      el("td", { class: "num", title: c.paused ? "recording paused" : "" },
        duration(c.media_s) + (c.paused ? " (paused)" : "")),
      sideCells(c.caller), sideCells(c.callee)));
  return el("table", { id: "active" }, el("thead", {}, head), el("tbody", {}, rows));
}

async function livePage() {
  const cards = el("div", { class: "cards" });
  const table = el("div");
  const charts = el("div");
  const health = el("div", { id: "status" });
  view.replaceChildren(el("h2", {}, "Calls in progress"), cards, table, el("h2", {}, "Capture, shipping, disk"), health,
    el("h2", {}, "Last hour"), charts);
  let previous = null;
  const status = async () => {
    try {
      const r = await fetch("/api/v1/status");
      if (r.status === 404) {
        health.replaceChildren(el("p", { class: "muted" }, "Not capturing: no capture or shipping status here."));
        return;
      }
      const s = await r.json();
      const now = Date.now();
      const rate = previous && s.capture && previous.s.capture
        ? (s.capture.frames - previous.s.capture.frames) / ((now - previous.at) / 1000) : null;
      previous = { s, at: now };
      const card = (value, label, cls = "") => el("div", { class: "card" }, el("b", { class: cls }, value), label);
      const ship = s.shipping || {};
      const parts = [el("div", { class: "cards" },
        card(s.health.status, s.health.reasons.join("; ") || "health", s.health.status === "ready" ? "good" : "poor"),
        card(rate === null ? "–" : Math.round(rate), "packets/s"),
        card(s.capture ? s.capture.drops : "–", "packets dropped", s.capture && s.capture.drops ? "poor" : ""),
        card(ship.queued ?? "–", "recordings queued"),
        card(ship.oldest_unshipped_age_s == null ? "–" : duration(ship.oldest_unshipped_age_s), "oldest unshipped"),
        card(ship.disk_used_percent == null ? "–" : ship.disk_used_percent + "%", "disk used", ship.disk_pressure ? "poor" : ""))];
      const ifaces = (s.capture && s.capture.interfaces) || [];
      if (ifaces.length) {
        parts.push(el("table", { id: "interfaces" },
          el("thead", {}, el("tr", {}, ["Interface", "Link", "Last packet", "Received", "Dropped"].map((h) => el("th", {}, h)))),
          el("tbody", {}, ifaces.map((i) => el("tr", {}, el("td", {}, i.name),
            el("td", { class: i.up ? "good" : "poor" }, i.link),
            el("td", { class: i.received ? "" : "muted" }, i.received ? duration(i.quiet_s) + " ago" : "none yet"),
            el("td", { class: "num" }, i.received),
            el("td", { class: "num " + (i.dropped + i.if_dropped ? "poor" : "") }, i.dropped + i.if_dropped))))));
      }
      const targets = Object.entries(ship.targets || {});
      if (targets.length) {
        const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);
        parts.push(el("table", { id: "targets" },
          el("thead", {}, el("tr", {}, ["Archive", "Queued", "Shipped", "Retries", "Permanent errors"].map((h) => el("th", {}, h)))),
          el("tbody", {}, targets.map(([name, t]) => el("tr", {}, el("td", {}, name), el("td", { class: "num" }, t.queued),
            el("td", { class: "num" }, t.shipped), el("td", { class: "num" }, sum(t.retries)),
            el("td", { class: "num " + (sum(t.permanent_errors) ? "poor" : "") }, sum(t.permanent_errors)))))));
      }
      health.replaceChildren(...parts);
    } catch (e) {
      health.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
    }
  };
  const draw = () => {
    cards.replaceChildren(
      el("div", { class: "card" }, el("b", { id: "active-count" }, live.calls.length), "calls in progress"),
      el("div", { class: "card" }, el("b", {}, live.capturing ? "capturing" : "not capturing"), "this process"));
    table.replaceChildren(live.calls.length ? liveTable() : el("p", { class: "muted", id: "no-active" }, "No call in progress."));
  };
  view.onlive = draw;
  draw();
  const refresh = async () => {
    try {
      const since = new Date(Date.now() - 3600e3).toISOString();
      const h = await getJson("/api/v1/histogram?bucket_s=60&since=" + encodeURIComponent(since));
      charts.replaceChildren(outcomeChart(h), mosChart(h));
    } catch (e) {
      charts.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
    }
  };
  await Promise.all([refresh(), status()]);
  let tick = 0;
  liveTimer = setInterval(() => {
    status();
    if (++tick % 5 === 0) refresh();
  }, 2000);
}

const STATES = [["completed", "#2f855a"], ["in_call", "#3182ce"], ["rejected", "#dd6b20"], ["cancelled", "#a0aec0"],
  ["ringing", "#805ad5"], ["setup", "#718096"]];

function chartCanvas(title) {
  const c = el("canvas", { width: 1200, height: 160, class: "chart", "aria-label": title });
  return [c, c.getContext("2d")];
}

function outcomeChart(h) {
  const [c, g] = chartCanvas("calls per minute by outcome");
  const max = Math.max(1, ...h.buckets.map((b) => b.calls));
  const w = c.width / Math.max(1, h.buckets.length);
  h.buckets.forEach((b, i) => {
    let y = c.height;
    for (const [state, colour] of STATES) {
      const n = b.states[state] || 0;
      const hgt = (n / max) * (c.height - 20);
      g.fillStyle = colour;
      g.fillRect(i * w + 1, y - hgt, w - 2, hgt);
      y -= hgt;
    }
  });
  g.fillStyle = "#1d2430";
  g.fillText("calls per minute by outcome (max " + max + ")", 6, 12);
  const legend = el("div", { class: "muted" }, STATES.map(([s, colour]) =>
    el("span", { style: "margin-right:1em;color:" + colour }, "■ " + s)));
  return el("div", {}, c, legend);
}

function mosChart(h) {
  const [c, g] = chartCanvas("average MOS per minute");
  const w = c.width / Math.max(1, h.buckets.length);
  const y = (m) => c.height - ((m - 1) / 4) * (c.height - 20);
  g.strokeStyle = "#2b6cb0";
  g.beginPath();
  let started = false;
  h.buckets.forEach((b, i) => {
    if (b.mos_avg === null) return;
    const x = i * w + w / 2;
    if (started) g.lineTo(x, y(b.mos_avg)); else g.moveTo(x, y(b.mos_avg));
    started = true;
  });
  g.stroke();
  g.fillStyle = "#1d2430";
  g.fillText("average MOS per minute (1–5)", 6, 12);
  return c;
}

function resultTable(calls) {
  const head = el("tr", {}, ["Start", "From", "To", "Duration", "State", "End", "MOS caller", "MOS callee",
    "Loss", "Complete"].map((h) => el("th", {}, h)));
  const rows = calls.map((c) => el("tr", { class: "clickable", "data-id": c.id, onclick: () => (location.hash = "#/call/" + encodeURIComponent(c.id)) },
    el("td", {}, when(c.start)), el("td", {}, c.from || "–"), el("td", {}, c.to || "–"),
    el("td", { class: "num" }, duration(c.duration_s)), el("td", {}, c.state), el("td", {}, c.end_reason),
    el("td", { class: "num " + mosClass(c.mos.caller) }, fmt(c.mos.caller)),
    el("td", { class: "num " + mosClass(c.mos.callee) }, fmt(c.mos.callee)),
    el("td", { class: "num" }, c.loss_pct === null ? "–" : fmt(c.loss_pct, 1) + "%"),
    el("td", {}, c.capture_complete ? "yes" : "no")));
  return el("table", { id: "results" }, el("thead", {}, head), el("tbody", {}, rows));
}

function searchPage(params) {
  const field = (name, label, attrs = {}) =>
    el("label", {}, label, el("input", { name, value: params.get(name) || "", ...attrs }));
  const form = el("form", { class: "filters", id: "search" },
    field("number", "Number (prefix)"), field("since", "Since", { type: "datetime-local" }),
    field("until", "Until", { type: "datetime-local" }),
    el("label", {}, "State", el("select", { name: "state" }, el("option", { value: "" }, "any"),
      STATES.map(([s]) => el("option", { value: s }, s)))),
    field("end_reason", "End reason"), field("mos_below", "MOS below", { type: "number", step: "0.1" }),
    el("label", {}, "Capture", el("select", { name: "incomplete" }, el("option", { value: "" }, "any"),
      el("option", { value: "true" }, "incomplete"), el("option", { value: "false" }, "complete"))),
    el("button", { type: "submit" }, "Search"));
  for (const s of form.querySelectorAll("select")) s.value = params.get(s.name) || "";
  const out = el("div", { id: "search-results" });
  view.replaceChildren(el("h2", {}, "Find a call"), form, out);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== "") q.set(k, v);
    location.hash = "#/search?" + q.toString();
  });
  if ([...params.keys()].length) runSearch(params, out);
}

async function runSearch(params, out) {
  const q = new URLSearchParams();
  for (const [k, v] of params) {
    if (v === "") continue;
    q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  let calls = [];
  const more = async (cursor) => {
    if (cursor) q.set("cursor", cursor);
    try {
      const page = await getJson("/api/v1/calls?" + q.toString());
      calls = calls.concat(page.calls);
      const next = page.next ? el("button", { id: "more", onclick: () => more(page.next) }, "More") : null;
      out.replaceChildren(el("p", { class: "muted" }, calls.length + " calls" + (page.next ? " (more)" : "")),
        resultTable(calls), next);
    } catch (e) {
      out.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
    }
  };
  await more(null);
}

async function callPage(id) {
  view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  let r;
  try {
    r = await getJson("/api/v1/calls/" + encodeURIComponent(id));
  } catch (e) {
    view.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
    return;
  }
  const party = (p) => (p ? (p.display ? p.display + " " : "") + "<" + p.uri + ">" : "–");
  const kv = el("dl", { class: "kv", id: "facts" });
  for (const [k, v] of [["Call-ID", r.call_id], ["From", party(r.from)], ["To", party(r.to)],
    ["Asserted identity", party(r.asserted_identity)], ["Start", when(r.start)], ["Answer", when(r.answer)],
    ["End", when(r.end)], ["Duration", duration(r.duration_s)], ["State", r.state],
    ["End reason", r.end_reason + (r.ended_by ? " (by " + r.ended_by + ")" : "")],
    ["Final code", r.final_code ?? "–"], ["Codecs", (r.codecs.caller || "–") + " / " + (r.codecs.callee || "–")],
    ["Capture", r.capture_complete ? "complete" : "incomplete: " + r.incomplete_reasons.join("; ")],
    ["Notes", r.notes.length ? r.notes.join("; ") : "–"]]) {
    kv.append(el("dt", {}, k), el("dd", {}, v));
  }
  const parts = [el("h2", {}, "Call " + id), kv];
  if (r.audio) {
    const src = "/api/v1/calls/" + encodeURIComponent(id) + "/audio";
    const audio = el("audio", { controls: "", preload: "metadata", src, id: "player" });
    const waves = el("div", { id: "waves" }, el("p", { class: "muted" }, "Drawing the waveform…"));
    parts.push(el("h2", {}, "Audio (" + r.audio.channels.join(" / ") + ")"), audio, waves);
    drawWaves(src, r.audio.channels, waves, audio);
  } else {
    parts.push(el("p", { class: "muted" }, "No audio for this call."));
  }
  parts.push(el("h2", {}, "Streams"), streamTable(r.streams));
  const overTime = qualityOverTime(r);
  if (overTime) parts.push(el("h2", {}, "Quality over the call"), overTime);
  if (r.sip && Array.isArray(r.sip.ladder) && r.sip.ladder.length) parts.push(el("h2", {}, "SIP (" + r.sip.transport + ")"), ladder(r.sip.ladder, r.sip.ladder_omitted));
  if (r.dtmf.length) parts.push(el("h2", {}, "DTMF"), el("p", {}, r.dtmf.map((d) => d.digit + " (" + d.side + ")").join(", ")));
  if (r.evidence) parts.push(el("p", {}, el("a", { href: "/api/v1/calls/" + encodeURIComponent(id) + "/pcap" }, "Download the call's packets (pcap)")));
  view.replaceChildren(...parts);
}

function streamTable(streams) {
  const head = el("tr", {}, ["Side", "Kind", "Codec", "SSRC", "Packets", "Lost", "Loss", "Jitter ms", "MOS", "R"]
    .map((h) => el("th", {}, h)));
  const rows = streams.map((s) => el("tr", {}, el("td", {}, s.side), el("td", {}, s.kind), el("td", {}, s.codec || "–"),
    el("td", {}, s.ssrc), el("td", { class: "num" }, s.packets), el("td", { class: "num" }, s.lost),
    el("td", { class: "num" }, fmt(s.loss_pct, 1) + "%"), el("td", { class: "num" }, fmt(s.jitter_ms, 1)),
    el("td", { class: "num " + mosClass(s.quality && s.quality.mos) }, fmt(s.quality && s.quality.mos)),
    el("td", { class: "num" }, fmt(s.quality && s.quality.r_factor, 1))));
  return el("table", { id: "streams" }, el("thead", {}, head), el("tbody", {}, rows));
}

const SIDE_COLOURS = { caller: "#2b6cb0", callee: "#c05621" };

// Each audio stream's MOS (line) and loss (bars) per interval, on the call's time axis.
function qualityOverTime(r) {
  const streams = r.streams.filter((s) => s.over_time && s.over_time.intervals.length);
  if (!streams.length) return null;
  const t0 = Date.parse(r.start);
  const spans = streams.map((s) => {
    const at = (Date.parse(s.first) - t0) / 1000;
    return s.over_time.intervals.map((i) => ({ ...i, from: at + i.t_s, to: at + i.t_s + s.over_time.interval_s }));
  });
  const end = Math.max(1, ...spans.flat().map((i) => i.to));
  const [c, g] = chartCanvas("quality over the call");
  c.id = "quality-over-time";
  const x = (t) => 40 + (t / end) * (c.width - 50);
  const y = (m) => c.height - 18 - ((m - 1) / 4) * (c.height - 36);
  g.fillStyle = "#718096";
  for (const m of [1, 2, 3, 4, 5]) g.fillText(String(m), 6, y(m) + 4);
  for (let t = 0; t <= end; t += Math.max(5, Math.ceil(end / 10 / 5) * 5)) g.fillText(t + " s", x(t) - 8, c.height - 4);
  const maxLoss = Math.max(1, ...spans.flat().map((i) => i.loss_pct));
  streams.forEach((s, k) => {
    const colour = SIDE_COLOURS[s.side] || "#4a5568";
    g.fillStyle = colour + "55";
    for (const i of spans[k]) {
      const h = (i.loss_pct / maxLoss) * 40;
      if (h > 0) g.fillRect(x(i.from) + k * 3, c.height - 18 - h, Math.max(2, x(i.to) - x(i.from) - 6), h);
    }
    g.strokeStyle = colour;
    g.lineWidth = 2;
    // The second direction dashed: where both have the same MOS, both stay visible.
    g.setLineDash(k ? [6, 6] : []);
    g.beginPath();
    let started = false;
    for (const i of spans[k]) {
      if (i.mos === null || i.mos === undefined) continue;
      const px = (x(i.from) + x(i.to)) / 2;
      if (started) g.lineTo(px, y(i.mos)); else g.moveTo(px, y(i.mos));
      started = true;
    }
    g.stroke();
  });
  g.setLineDash([]);
  g.fillStyle = "#1d2430";
  g.fillText("MOS per " + streams[0].over_time.interval_s + " s (lines, 1–5) and loss (bars, max " + fmt(maxLoss, 1) + "%)", 40, 12);
  const legend = el("div", { class: "muted" }, streams.map((s) =>
    el("span", { style: "margin-right:1em;color:" + (SIDE_COLOURS[s.side] || "#4a5568") }, (s === streams[0] ? "━ " : "╍ ") + s.side + " → " + (s.side === "caller" ? "callee" : "caller"))));
  return el("div", {}, c, legend);
}

function ladder(messages, omitted) {
  const t0 = Date.parse(messages[0].at);
  const head = el("tr", {}, ["+s", "", "Message", "From", "To"].map((h) => el("th", {}, h)));
  const rows = messages.map((m) => el("tr", { class: m.retransmission ? "muted" : "" },
    el("td", { class: "num" }, ((Date.parse(m.at) - t0) / 1000).toFixed(3)),
    el("td", { class: "arrow" }, m.from === "caller" ? "caller ──────▶ callee" : "caller ◀────── callee"),
    el("td", {}, m.what + (m.sdp ? " (SDP)" : "") + (m.retransmission ? " (retransmission)" : "")),
    el("td", {}, m.src), el("td", {}, m.dst)));
  const table = el("table", { class: "ladder", id: "ladder" }, el("thead", {}, head), el("tbody", {}, rows));
  return omitted ? el("div", {}, table, el("p", { class: "muted" }, omitted + " more messages not kept")) : table;
}

async function drawWaves(src, channels, box, audio) {
  try {
    const data = await (await fetch(src)).arrayBuffer();
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const buf = await ctx.decodeAudioData(data);
    const canvases = [];
    for (let ch = 0; ch < buf.numberOfChannels; ch++) {
      const c = el("canvas", { width: 1200, height: 90, class: "wave", "data-channel": channels[ch] || ch });
      const g = c.getContext("2d");
      const s = buf.getChannelData(ch);
      const step = Math.max(1, Math.floor(s.length / c.width));
      g.fillStyle = ch ? "#805ad5" : "#2b6cb0";
      for (let x = 0; x < c.width; x++) {
        let lo = 0, hi = 0;
        for (let i = x * step; i < Math.min(s.length, (x + 1) * step); i++) {
          if (s[i] < lo) lo = s[i];
          if (s[i] > hi) hi = s[i];
        }
        g.fillRect(x, (1 - hi) * 45, 1, Math.max(1, (hi - lo) * 45));
      }
      g.fillStyle = "#1d2430";
      g.fillText(channels[ch] || "channel " + ch, 4, 12);
      c.addEventListener("click", (ev) => {
        const r = c.getBoundingClientRect();
        audio.currentTime = ((ev.clientX - r.left) / r.width) * buf.duration;
      });
      canvases.push(c);
    }
    box.replaceChildren(...canvases);
    box.dataset.duration = String(buf.duration);
    ctx.close();
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, "Cannot draw the waveform: " + (e.message || e)));
  }
}

// ---- routing ------------------------------------------------------------------------------

function route() {
  if (liveTimer) clearInterval(liveTimer);
  liveTimer = null;
  view.onlive = null;
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  if (path.startsWith("/call/")) callPage(decodeURIComponent(path.slice(6)));
  else if (path === "/search") searchPage(new URLSearchParams(query || ""));
  else livePage();
}

window.addEventListener("hashchange", route);
connect();
route();
