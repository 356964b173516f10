// The admin page: connects to the reserved namespace "/$admin" with the shipped browser
// client, keeps each node's latest snapshot (model.js) and draws them (charts.js).
// Everything user-controlled (room names, node ids) is written with textContent only.

import { Model, TRANSPORTS } from "./model.js";
import { bars, stacked } from "./charts.js";

const page = document.body.dataset;
const $ = (selector) => document.querySelector(selector);
const model = new Model();
let connectedSince = null;

async function key() {
  // A short-lived key for this negotiate; the browser sends the admin credentials it
  // was given for this page (HTTP Basic) with the request.
  const response = await fetch(page.key, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`admin key refused (${response.status})`);
  return response.text();
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}

function renderTotals() {
  const { sessions, counts } = model.totals();
  $("#sessions").textContent = String(sessions);
  $("#sessions").dataset.count = String(sessions);
  for (const [kind, n] of Object.entries(counts)) {
    const node = document.querySelector(`#connections [data-transport="${kind}"]`);
    if (node) node.textContent = String(n);
  }
  page.sessions = String(sessions);
  page.transports = TRANSPORTS.map((t) => `${t}=${counts[t]}`).join(",");
}

function renderCharts() {
  const kinds = [...TRANSPORTS, "detached"];
  const series = kinds.map((name) => ({ name, values: model.history.map((p) => p.counts[name]) }));
  // The window grows from a minute to the whole history as the page stays open.
  const width = Math.min(model.historySize, Math.max(60, model.history.length));
  $("#scale-transports").textContent = String(stacked($("#chart-transports"), series, width));
  const activity = model.activity();
  for (const name of ["connects", "resumes", "fallbacks"]) {
    const values = activity.counts[name] || [];
    bars($(`#chart-${name}`), values);
    $(`#sum-${name}`).textContent = String(values.reduce((a, b) => a + b, 0));
  }
}

function renderRooms() {
  const body = $("#rooms tbody");
  body.replaceChildren();
  const top = model.rooms(10);
  const largest = Math.max(1, ...top.map((r) => r.size));
  for (const r of top) {
    const row = body.insertRow();
    row.dataset.room = r.room;
    cell(row, r.ns);
    cell(row, r.room);
    cell(row, r.size, "num");
    const bar = document.createElement("span");
    bar.className = "meter";
    bar.style.width = `${Math.round((100 * r.size) / largest)}%`; // CSSOM: allowed by the CSP
    row.insertCell().appendChild(bar);
  }
  page.rooms = String(top.length);
}

function renderNodes(now) {
  const body = $("#nodes tbody");
  body.replaceChildren();
  const detail = [];
  for (const [node, { snap, seen }] of [...model.nodes].sort()) {
    const row = body.insertRow();
    row.dataset.node = node;
    cell(row, node, "mono");
    cell(row, snap.sessions, "num");
    for (const t of TRANSPORTS) cell(row, snap.transports[t] || 0, "num");
    cell(row, (snap.rooms && snap.rooms.count) || 0, "num");
    cell(row, `${snap.broker.kind} ${snap.broker.state}`, `state ${snap.broker.state}`);
    cell(row, `${Math.max(0, Math.round((now - seen) / 1000))} s ago`, "num");
    const counters = { ...(snap.broker.counters || {}), ...(snap.broker.cluster || {}) };
    if (Object.keys(counters).length) {
      detail.push(`${node}: ${Object.entries(counters).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    }
  }
  $("#broker-detail").textContent = detail.join("\n");
  page.nodes = String(model.nodes.size);
  const state = model.brokerState();
  $("#broker").textContent = `broker ${state}`;
  $("#broker").className = `badge state ${state}`;
}

function render() {
  const now = Date.now();
  renderTotals();
  renderCharts();
  renderRooms();
  renderNodes(now);
}

function take(snap) {
  if (model.add(snap, Date.now())) render();
}

const { connect } = await import(page.client);
const socket = connect({ path: page.path, namespace: "/$admin", getToken: key, remember: false });
socket.on("snapshot", take);
socket.onState((state) => {
  page.state = state;
  $("#state").textContent = state;
  $("#state").className = `badge ${state === "connected" ? "ok" : "down"}`;
  if (state === "connected" && connectedSince === null) {
    connectedSince = Date.now();
    // This node's figures at once; the other nodes' arrive within an interval.
    socket.call("snapshot").then(take, () => {});
  }
  if (state !== "connected") connectedSince = null;
});
socket.onTransport((name) => {
  $("#link").textContent = `via ${name}`;
  page.link = name;
});

// Once a second: drop silent nodes, add a point to the history, redraw.
setInterval(() => {
  const now = Date.now();
  model.prune(now);
  model.sample(now);
  render();
}, 1000);
page.ready = "1";
