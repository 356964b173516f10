// The transport doctor in the browser: the page at {prefix}/doctor (served when the server
// runs with the doctor on) runs the same checks as `anywire doctor URL` from the user's
// browser, against the server's probe endpoints (anywire/server/doctor.py), and shows a
// text report to copy and send to support. Verdicts: doctorrules.js.

import { NAMES, diagnose, render } from "./doctorrules.js";

const now = () => performance.now();
const ms = (since) => Math.round((now() - since) * 10) / 10;

function withTimeout(promise, seconds, onTimeout) {
  let timer;
  const limit = new Promise((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), seconds * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

async function echo(prefix, nonce) {
  // A cookie of the probe's own, sent back by the echo if nothing strips it.
  document.cookie = `anywire_doctor=${nonce}; path=/; SameSite=Strict`;
  const auth = `Bearer anywire-doctor-${nonce}`;
  try {
    const response = await fetch(prefix + "/doctor/echo", {
      headers: { "X-Anywire-Doctor": nonce, Authorization: auth },
      cache: "no-store",
      credentials: "same-origin",
    });
    const body = response.ok ? await response.json() : null;
    if (!body || body.doctor !== true) return null;
    return {
      checked: true,
      header: body.header === nonce,
      authorization: body.authorization === auth,
      cookie: body.cookie === nonce,
    };
  } catch {
    return null;
  } finally {
    document.cookie = "anywire_doctor=; path=/; max-age=0; SameSite=Strict";
  }
}

function websocket(prefix, nonce, timeout) {
  const url = new URL(prefix + "/doctor/ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const facts = { checked: true, upgraded: false, passes: false };
  return new Promise((resolve) => {
    let ws;
    let sent = 0;
    const done = (error) => {
      if (error && facts.error === undefined && !facts.passes) facts.error = error;
      clearTimeout(timer);
      try { ws.close(); } catch { /* closing a broken socket */ }
      resolve(facts);
    };
    const timer = setTimeout(
      () => done(facts.upgraded ? `no echo within ${timeout} s` : `no upgrade within ${timeout} s`),
      timeout * 1000,
    );
    try {
      ws = new WebSocket(url);
    } catch (exc) {
      done(String(exc));
      return;
    }
    ws.onopen = () => {
      facts.upgraded = true;
      sent = now();
      ws.send(nonce);
    };
    ws.onmessage = (event) => {
      if (event.data === nonce) {
        facts.passes = true;
        facts.rtt_ms = ms(sent);
        done();
      }
    };
    // Browsers do not say why an upgrade failed (no status): "refused" is all we know.
    ws.onerror = () => done(facts.upgraded ? "connection failed" : "upgrade refused or failed");
    ws.onclose = () => done(facts.upgraded ? "closed before the echo" : "upgrade refused or failed");
  });
}

function sse(prefix, stream, timeout) {
  const facts = { checked: true };
  const start = now();
  return new Promise((resolve) => {
    const source = new EventSource(`${prefix}/doctor/sse?s=${stream}`);
    const done = (error) => {
      if (error) facts.error = error;
      clearTimeout(timer);
      source.close();
      resolve(facts);
    };
    const timer = setTimeout(() => {
      facts.timed_out = true;
      done(`no event within ${stream + timeout} s`);
    }, (stream + timeout) * 1000);
    source.onopen = () => { facts.status = 200; };
    source.onmessage = () => {
      facts.first_event_ms = facts.rtt_ms = ms(start);
      done();
    };
    source.onerror = () => done("event stream failed");
  });
}

async function hold(prefix, seconds, timeout) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), (seconds + timeout) * 1000);
  try {
    const response = await fetch(`${prefix}/doctor/hold?s=${seconds}`, {
      cache: "no-store",
      signal: controller.signal,
    });
    const body = response.status === 200 ? await response.json() : await response.text();
    return { status: response.status, held: typeof body?.held === "number" ? body.held : null };
  } catch {
    return { status: null, held: null };
  } finally {
    clearTimeout(timer);
  }
}

async function ladder(prefix, holds, maxHold, timeout) {
  const facts = { checked: true, held_s: 0 };
  const start = now();
  const { status } = await hold(prefix, 0, timeout);
  if (status !== 200) {
    if (status === null) facts.error = "request failed";
    else facts.status = status;
    return facts;
  }
  facts.rtt_ms = ms(start);
  let spent = 0;
  for (const seconds of holds) {
    if (spent + seconds > maxHold) break;
    const t0 = now();
    const { held } = await hold(prefix, seconds, timeout);
    spent += (now() - t0) / 1000;
    if (held === null) {
      facts.cut_after_s = Math.round((now() - t0) / 100) / 10;
      break;
    }
    facts.held_s = held; // the server's cap (60 s) may have shortened it
  }
  return facts;
}

/**
 * Run every check from this browser against the doctor endpoints under `prefix`.
 * Options: holds (seconds, tried in turn), maxHold, timeout, stream (as the CLI's).
 * Resolves to the facts doctorrules.js reads.
 */
export async function probe(prefix, options = {}) {
  const holds = options.holds ?? [5, 15, 30];
  const maxHold = options.maxHold ?? 60;
  const timeout = options.timeout ?? 5;
  const stream = options.stream ?? 3;
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  const path = await echo(prefix, nonce);
  if (path === null) {
    return { url: location.origin + prefix, doctor: false, unchecked: ["everything: the server's doctor endpoints did not answer"] };
  }
  const [ws, es, lp] = await Promise.all([
    websocket(prefix, nonce, timeout),
    sse(prefix, stream, timeout),
    ladder(prefix, holds, maxHold, timeout),
  ]);
  return { url: location.origin + prefix, doctor: true, websocket: ws, sse: es, longpoll: lp, path, unchecked: [] };
}

function numbers(text) {
  return text ? text.split(",").map(Number).filter((x) => x > 0) : undefined;
}

/** The page: run the probe (query: ?holds=5,15,30&max=60&timeout=5), show and copy. */
export async function runPage(doc, loc) {
  const prefix = loc.pathname.replace(/\/doctor\/?$/, "");
  const query = new URLSearchParams(loc.search);
  const options = {
    holds: numbers(query.get("holds")),
    maxHold: query.has("max") ? Number(query.get("max")) : undefined,
    timeout: query.has("timeout") ? Number(query.get("timeout")) : undefined,
  };
  const facts = await probe(prefix, options);
  const diagnosis = diagnose(facts);
  const where = `${loc.origin}${prefix} from ${navigator.userAgent}`;
  const text = render(diagnosis, where) + "\nfacts: " + JSON.stringify(facts) + "\n";
  const tbody = doc.querySelector("#table tbody");
  const rows = Object.entries(diagnosis.transports);
  rows.push(["headers", { ...diagnosis.path, rtt_ms: null }]);
  for (const [name, t] of rows) {
    const row = doc.createElement("tr");
    const rtt = t.rtt_ms === null ? (name === "headers" ? "" : "-") : `${t.rtt_ms} ms`;
    for (const [value, cls] of [[name], [t.verdict, t.verdict], [rtt], [t.detail]]) {
      const cell = doc.createElement("td");
      cell.textContent = value;
      if (cls) cell.className = cls;
      row.append(cell);
    }
    tbody.append(row);
  }
  doc.getElementById("table").hidden = false;
  for (const line of diagnosis.advice) {
    const item = doc.createElement("li");
    item.textContent = line;
    doc.getElementById("advice").append(item);
  }
  doc.getElementById("status").textContent = diagnosis.ok
    ? `Done. Your browser can connect: it will use ${NAMES[diagnosis.uses]}.`
    : "Done. No connection type works from here; please send the report below to support.";
  doc.getElementById("report").textContent = text;
  const copy = doc.getElementById("copy");
  copy.disabled = false;
  copy.onclick = async () => {
    await navigator.clipboard.writeText(text);
    doc.getElementById("copied").textContent = "copied";
  };
  window.anywireDoctor = { facts, diagnosis, text };
  doc.body.dataset.done = "1";
  return diagnosis;
}
