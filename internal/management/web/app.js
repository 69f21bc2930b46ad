// The dashboard: a snapshot of the deployment every sample interval, over
// server-sent events (falling back to polling the JSON endpoint).
"use strict";

// URLs are built from location.origin, never relative to a page URL that
// may carry credentials (http://user:pass@host/), which fetch refuses.
const api = (path) => location.origin + path;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function num(v, digits) {
  if (v === null || v === undefined) return "–";
  return Number(v).toFixed(digits);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "no heartbeats";
  if (seconds < 90) return seconds.toFixed(0) + " s ago";
  if (seconds < 5400) return (seconds / 60).toFixed(0) + " min ago";
  return (seconds / 3600).toFixed(1) + " h ago";
}

function when(ts) {
  const d = new Date(ts);
  return el("time", { datetime: ts }, d.toLocaleTimeString());
}

const SVG = "http://www.w3.org/2000/svg";

// sparkline draws the inbound and outbound rate histories.
function sparkline(inbound, outbound) {
  const w = 160, h = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const all = inbound.concat(outbound);
  const top = Math.max(1, ...all);
  for (const [cls, series] of [["in", inbound], ["out", outbound]]) {
    if (series.length === 0) continue;
    const step = series.length > 1 ? w / (series.length - 1) : 0;
    const pts = series.map((v, i) => `${(i * step).toFixed(1)},${(h - 1 - (v / top) * (h - 2)).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", cls);
    line.setAttribute("points", pts.join(" "));
    svg.append(line);
  }
  const title = document.createElementNS(SVG, "title");
  title.textContent = `peak ${top.toFixed(1)} msg/s (blue in, orange out)`;
  svg.append(title);
  return svg;
}

function statusCell(st) {
  if (!st) return el("td", {}, "–");
  return el("td", { class: "st-" + st.status, title: st.message }, `${st.status} (${st.type || st.component})`);
}

function render(d) {
  document.getElementById("meta").textContent =
    `${d.config} · ${d.hostname} pid ${d.pid} · updated ${new Date(d.now).toLocaleTimeString()}`;
  document.body.dataset.updated = d.now;

  const ch = document.querySelector("#channels tbody");
  ch.replaceChildren(...d.channels.map((c) =>
    el("tr", { "data-channel": c.id },
      el("td", {}, c.id, c.transport_name !== c.id ? ` (${c.transport_name})` : ""),
      el("td", {}, c.kind),
      el("td", { class: "num rate-in" }, num(c.rates.inbound, 2)),
      el("td", { class: "num rate-out" }, num(c.rates.outbound, 2)),
      el("td", { class: "num rate-event" }, num(c.rates.event, 2)),
      el("td", { class: "num lag-out" }, c.lag.outbound),
      el("td", { class: "num lag-in" }, c.lag.inbound),
      el("td", { class: "num" }, c.in_flight),
      el("td", {}, sparkline(c.history.inbound, c.history.outbound)))));

  const wk = document.querySelector("#workers tbody");
  wk.replaceChildren(...d.workers.map((w) => {
    const here = w.here ? `${w.here.state}${w.here.restarts ? `, ${w.here.restarts} restarts` : ""}` : (w.problem ? "not started" : "–");
    return el("tr", { "data-worker": w.name, class: w.silent ? "silent" : null, title: w.problem || (w.here && w.here.last_error) || null },
      el("td", {}, w.name),
      el("td", {}, w.kind || "?"),
      el("td", {}, w.source),
      el("td", { class: "hb" }, age(w.heartbeat_age_seconds), w.silent ? " — SILENT" : ""),
      el("td", { class: "num" }, w.instances.length),
      statusCell(w.status),
      el("td", {}, here));
  }));

  const fl = document.getElementById("failures");
  fl.replaceChildren(...(d.failures.length ? d.failures : [null]).map((f) => f
    ? el("li", {}, when(f.timestamp), `${f.worker || f.topic}: `, el("b", {}, f.failure_code), " ", f.reason)
    : el("li", {}, "none")));

  const sl = document.getElementById("statuses");
  sl.replaceChildren(...(d.statuses.length ? d.statuses : [null]).map((s) => s
    ? el("li", { class: "st-" + s.status }, when(s.timestamp), `${s.worker || s.transport_name || s.component} ${s.status}: `, s.message)
    : el("li", {}, "none")));
}

function setConn(state) {
  const c = document.getElementById("conn");
  c.textContent = state;
  c.className = "badge " + (state === "live" ? "live" : "down");
}

let polling = null;

function poll() {
  if (polling) return;
  const once = () => fetch(api("/api/v1/dashboard"), { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error(r.status); return r.json(); })
    .then((env) => { render(env.result); setConn("live"); })
    .catch(() => setConn("offline"));
  once();
  polling = setInterval(once, 2000);
}

function stream() {
  if (!window.EventSource) { poll(); return; }
  const es = new EventSource(api("/api/v1/dashboard/stream"), { withCredentials: true });
  let got = false;
  es.addEventListener("snapshot", (ev) => {
    got = true;
    setConn("live");
    render(JSON.parse(ev.data));
  });
  es.onerror = () => {
    if (!got) { es.close(); poll(); return; }
    setConn("reconnecting");
  };
}

stream();
