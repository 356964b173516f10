// The transport doctor's verdicts, for the browser page (doctor.js): the twin of
// anywire/doctor/rules.py, written twice so the page needs no server round trip.
// tests/doctor/test_rules.py runs both on the same facts and asserts they agree word for
// word: change them together. Pure functions, no DOM.

export const ORDER = ["websocket", "sse", "longpoll"];
export const NAMES = { websocket: "WebSocket", sse: "SSE", longpoll: "long-polling" };
/** A first event (sent at once) later than this was held back by the path. */
export const SSE_PROMPT_MS = 1000;

const round = (x) => Math.floor(x + 0.5);
const fmt = (x) => String(x);
const isNum = (x) => typeof x === "number";

function websocket(f) {
  if (!f.checked) return ["unchecked", null, "not checked"];
  if (!f.upgraded) {
    if (isNum(f.status)) {
      return ["fails", `WebSocket upgrade refused (HTTP ${f.status}): clients will use {next}`,
        `upgrade refused (HTTP ${f.status})`];
    }
    const error = f.error || "no answer";
    return ["fails", `WebSocket could not connect (${error}): clients will use {next}`,
      `upgrade failed: ${error}`];
  }
  if (!f.passes) {
    return ["fails",
      "WebSocket upgrades but nothing passes after the 101 (something on the path " +
        "black-holes it): clients will use {next} after their connect timeout",
      "upgraded (101), then nothing came back"];
  }
  return ["works", null, "upgraded (101), a message passed both ways"];
}

function sse(f) {
  if (!f.checked) return ["unchecked", null, "not checked"];
  const first = isNum(f.first_event_ms) ? f.first_event_ms : null;
  const status = isNum(f.status) ? f.status : null;
  if (first === null && status !== null && status !== 200) {
    return ["fails", `the event stream was refused (HTTP ${status}): clients will use {next}`,
      `refused (HTTP ${status})`];
  }
  if (first === null) {
    if (status === 200 || f.timed_out) {
      // The first event is sent at once: a stream that stays silent is held back.
      return ["fails", "a proxy buffers event streams: clients will use {next}",
        f.error || "stream opened, no event arrived"];
    }
    const error = f.error || "no answer";
    return ["fails", `the event stream failed (${error}): clients will use {next}`, `failed: ${error}`];
  }
  if (first > SSE_PROMPT_MS) {
    return ["fails", "a proxy buffers event streams: clients will use {next}",
      `first event held back for ${round(first)} ms`];
  }
  return ["works", null, `first event after ${round(first)} ms`];
}

function longpoll(f) {
  if (!f.checked) return ["unchecked", null, "not checked"];
  if (!isNum(f.rtt_ms)) {
    const why = isNum(f.status) ? `HTTP ${f.status}` : (f.error || "no answer");
    return ["fails", `long-polling failed (${why}): clients cannot fall back to it`, `failed: ${why}`];
  }
  const held = f.held_s;
  if (isNum(f.cut_after_s)) {
    const n = round(f.cut_after_s);
    return ["limited",
      `idle connections are cut after ~${n} s: keep ping_interval and poll_window below that`,
      `a held request was cut after ~${n} s` + (held ? ` (held ${fmt(held)} s fine)` : "")];
  }
  if (held) return ["works", null, `held ${fmt(held)} s without a cut`];
  return ["works", null, "answered (hold not tried)"];
}

function path(f) {
  if (!f.checked) return ["unchecked", [], "not checked"];
  const advice = [];
  const lost = [];
  if (f.header === false) {
    lost.push("X- headers");
    advice.push("the path strips custom X- headers: SSE and long-polling cannot carry their " +
      "session token (X-Anywire-Token), so they fail");
  }
  if (f.authorization === false) {
    lost.push("Authorization");
    advice.push("the path strips the Authorization header: negotiate cannot see bearer tokens");
  }
  if (f.cookie === false) {
    lost.push("cookies");
    advice.push("the path strips cookies: cookie sessions and cookie-sticky load balancing will not work");
  }
  if (lost.length) return ["limited", advice, "stripped: " + lost.join(", ")];
  return ["works", [], "X- header, Authorization and cookie arrive"];
}

/** Verdicts and advice for the probe's facts (same shape as rules.py's diagnose). */
export function diagnose(facts) {
  const rules = { websocket, sse, longpoll };
  const found = {};
  for (const name of ORDER) found[name] = rules[name](facts[name] || {});
  const pathFacts = facts.path || {};
  if (pathFacts.checked && pathFacts.header === false) {
    // The clients send the session token of SSE and long-poll requests in
    // X-Anywire-Token: where it is stripped those sessions fail after the first frame.
    for (const name of ["sse", "longpoll"]) {
      if (found[name][0] === "works" || found[name][0] === "limited") {
        found[name] = ["fails", null, found[name][2] + "; X-Anywire-Token stripped"];
      }
    }
  }
  const usable = ORDER.filter((n) => found[n][0] === "works" || found[n][0] === "limited");
  const advice = [];
  const transports = {};
  ORDER.forEach((name, i) => {
    const [verdict, text, detail] = found[name];
    const rtt = (facts[name] || {}).rtt_ms;
    transports[name] = { verdict, detail, rtt_ms: isNum(rtt) ? round(rtt) : null };
    if (text !== null) {
      const later = usable.filter((n) => ORDER.indexOf(n) > i);
      const earlier = usable.filter((n) => ORDER.indexOf(n) < i);
      // Most clients stay on the earlier one: say who falls back.
      const said = earlier.length
        ? text.replace("clients will use", `clients that cannot use ${NAMES[earlier[0]]} will use`)
        : text;
      advice.push(said.replace("{next}", later.length ? NAMES[later[0]] : "no transport"));
    }
  });
  const [verdict, pathAdvice, detail] = path(pathFacts);
  advice.push(...pathAdvice);
  const uses = usable.length ? usable[0] : null;
  if (ORDER.every((n) => found[n][0] === "unchecked")) advice.push("no transport could be checked");
  else if (uses === null) advice.push("no transport works from here: clients cannot connect");
  else if (usable.length === ORDER.length && !advice.length) advice.push("all three transports work from here");
  for (const what of facts.unchecked || []) advice.push(`not checked: ${what}`);
  return { transports, path: { verdict, detail }, uses, ok: uses !== null, advice };
}

const pad = (s, n) => String(s).padEnd(n);

/** The diagnosis as the text the CLI prints and the page copies. */
export function render(diagnosis, url = "") {
  const lines = url ? [`anywire doctor: ${url}`] : [];
  lines.push(pad("transport", 13) + pad("verdict", 11) + pad("latency", 10) + "detail");
  for (const name of ORDER) {
    const t = diagnosis.transports[name];
    const rtt = t.rtt_ms === null ? "-" : `${t.rtt_ms} ms`;
    lines.push(pad(name, 13) + pad(t.verdict, 11) + pad(rtt, 10) + t.detail);
  }
  const p = diagnosis.path;
  lines.push(pad("headers", 13) + pad(p.verdict, 11) + pad("", 10) + p.detail);
  const uses = diagnosis.uses;
  if (uses) lines.push(`clients will use: ${NAMES[uses]}`);
  else if (ORDER.every((n) => diagnosis.transports[n].verdict === "unchecked")) {
    lines.push("clients will use: unknown (nothing could be checked)");
  } else lines.push("clients will use: nothing (no transport works)");
  for (const a of diagnosis.advice) lines.push(`- ${a}`);
  return lines.join("\n") + "\n";
}
