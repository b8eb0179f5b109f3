"use strict";
// The dashboard page: polls /api/state and /api/events (the manager's own
// cluster events, as `rswarm events` shows them) every second and renders
// them; actions POST JSON to /api/... with the cookie the login form set.

const $ = (id) => document.getElementById(id);
const history = []; // [time, running tasks, ready nodes], last 5 minutes

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

async function act(path, body) {
  $("error").textContent = "";
  const r = await fetch(path, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  if (r.status === 401) { location.reload(); return; }
  if (!r.ok) {
    const e = await r.json().catch(() => ({error: r.statusText}));
    $("error").textContent = e.error;
  }
  poll();
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function renderRaft(r) {
  const box = $("raft"); box.replaceChildren();
  const card = (label, value, cls) => box.append(el("div", {}, el("b", {class: cls || ""}, value), label));
  card("leader", r.leader || "none", r.leader ? "ok" : "bad");
  card("term", r.term);
  card("managers reachable", r.managers_reachable + " / " + r.managers,
    r.managers_reachable * 2 > r.managers ? "ok" : "bad");
  card("applied index", r.last_applied);
  card("this manager", r.state);
}

function renderServices(list) {
  const body = $("services").tBodies[0]; body.replaceChildren();
  for (const s of list) {
    const id = encodeURIComponent(s.id);
    const actions = el("td", {});
    if (s.mode === "replicated" || s.mode === "replicated-job") {
      const n = el("input", {type: "number", min: "0", max: "10000", value: s.desired, "data-service": s.name});
      actions.append(n, " ", el("button", {onclick: () => act(`/api/services/${id}/scale`, {replicas: Number(n.value)})}, "Scale"), " ");
    }
    actions.append(el("button", {onclick: () => act(`/api/services/${id}/force-update`)}, "Force update"), " ");
    if (s.can_rollback) actions.append(el("button", {onclick: () => act(`/api/services/${id}/rollback`)}, "Roll back"));
    const upd = s.update ? s.update.state + (s.update.message ? ": " + s.update.message : "") : "";
    body.append(el("tr", {"data-service": s.name},
      el("td", {}, s.name), el("td", {}, s.mode),
      el("td", {class: s.running >= s.desired ? "ok" : "warn", "data-replicas": s.name}, `${s.running}/${s.desired}`),
      el("td", {}, s.image), el("td", {}, upd), actions));
  }
}

function renderNodes(nodes, tasks) {
  const body = $("nodes").tBodies[0]; body.replaceChildren();
  for (const n of nodes) {
    const id = encodeURIComponent(n.id);
    const mine = tasks.filter((t) => t.node_id === n.id);
    const tl = el("div", {class: "tasks"});
    for (const t of mine) tl.append(el("div", {}, `${t.name} ${t.state}${t.message ? " (" + t.message + ")" : ""}`));
    const role = n.role + (n.manager ? (n.manager.leader ? " (leader)" : " (" + n.manager.reachability + ")") : "");
    const next = n.availability === "active" ? "drain" : "active";
    body.append(el("tr", {"data-node": n.hostname},
      el("td", {}, n.hostname), el("td", {class: n.state === "ready" ? "ok" : "bad"}, n.state),
      el("td", {}, n.availability), el("td", {}, role),
      el("td", {}, `${(n.nano_cpus / 1e9).toFixed(1)} CPU, ${bytes(n.memory_bytes)}`), el("td", {}, tl),
      el("td", {}, el("button", {onclick: () => act(`/api/nodes/${id}/availability`, {availability: next})},
        next === "drain" ? "Drain" : "Activate"))));
  }
}

async function pollEvents() {
  const r = await fetch("/api/events", {credentials: "same-origin", cache: "no-store"});
  if (!r.ok) return;
  const list = await r.json();
  $("events").replaceChildren(...list.map((e) => el("li", {},
    `${new Date(e.time_nano / 1e6).toLocaleTimeString()} ${e.type} ${e.action} ${e.name || e.id.slice(0, 12)}`)));
}

function renderChart() {
  const svg = $("chart"), w = 600, h = 80;
  const t0 = Date.now() - 300000;
  while (history.length && history[0][0] < t0) history.shift();
  const max = Math.max(1, ...history.map((p) => Math.max(p[1], p[2])));
  const line = (i, color) => {
    const pts = history.map((p) => `${((p[0] - t0) / 300000 * w).toFixed(1)},${(h - 4 - p[i] / max * (h - 8)).toFixed(1)}`).join(" ");
    const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    pl.setAttribute("points", pts); pl.setAttribute("fill", "none"); pl.setAttribute("stroke", color);
    return pl;
  };
  svg.replaceChildren(line(1, "#187a32"), line(2, "#a05a00"));
}

async function poll() {
  try {
    const r = await fetch("/api/state", {credentials: "same-origin", cache: "no-store"});
    if (r.status === 401) { location.reload(); return; }
    if (!r.ok) throw new Error((await r.json().catch(() => ({error: r.statusText}))).error);
    const s = await r.json();
    renderRaft(s.raft);
    renderServices(s.services);
    renderNodes(s.nodes, s.tasks);
    history.push([Date.now(), s.tasks.filter((t) => t.state === "running").length,
      s.nodes.filter((n) => n.state === "ready").length]);
    renderChart();
    await pollEvents();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (e) {
    $("updated").textContent = "not updated: " + e.message;
  }
}

poll();
setInterval(() => { if (!document.activeElement || document.activeElement.type !== "number") poll(); }, 1000);
