// Conformance driver for the JS client in node: polls `anywire conformance` for
// instructions, follows them with the real client (anywire/clients/js) and reports.
//   node --experimental-websocket --experimental-eventsource driver.mjs http://127.0.0.1:PORT
// A transport the runtime cannot carry (no WebSocket global; neither EventSource nor a
// streaming fetch for SSE) is reported as "skipped: transport unavailable", never passed.
//   node ... driver.mjs --profile rn http://127.0.0.1:PORT
// runs it in the React Native profile (tests/js/profiles.mjs: no EventSource, window,
// document, sessionStorage; SSE over a streaming fetch), set up before the client loads.
//   node ... driver.mjs [--profile P] --broken no-pace http://127.0.0.1:PORT
// turns the client's pacing off (its `pace` option), as a faulty client.
import { applyProfile } from "../js/profiles.mjs";

const args = process.argv.slice(2);
const base = args.at(-1);
const profile = args[0] === "--profile" ? args[1] : "node";
// --broken no-pace: the client's pacing off (its `pace` option), as a faulty client.
const broken = args.includes("--broken") ? args[args.indexOf("--broken") + 1] : "";
if (!["", "no-pace"].includes(broken)) throw new Error(`unknown --broken mode ${broken}`);
applyProfile(profile);
if (profile.startsWith("rn") && (globalThis.EventSource || globalThis.window || globalThis.sessionStorage)) {
  throw new Error("React Native profile: EventSource, window and sessionStorage must be gone");
}
const { connect } = await import("../../anywire/clients/js/anywire.js");
const { resolveEnv } = await import("../../anywire/clients/js/env.js");
const { canCarry } = await import("../../anywire/clients/js/runtime.js");
// What this runtime can carry, as the client itself decides it (SSE: EventSource or a
// streaming fetch).
const ENV = resolveEnv({}, null);
const HAVE = Object.fromEntries(["websocket", "sse", "longpoll"].map((t) => [t, canCarry(ENV, t)]));

class Run {
  constructor() {
    this.socket = null;
    this.handle = [];
    this.events = {};
    this.connects = 0;
    this.waiters = new Set();
    this.old = []; // earlier sockets of a scenario with several connects
  }
  pulse() {
    for (const w of [...this.waiters]) w();
  }
  // Resolves true when pred() holds, false at the timeout (seconds).
  until(pred, timeout) {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (pred()) done(true);
      };
      const timer = setTimeout(() => done(pred()), timeout * 1000);
      const done = (v) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(v);
      };
      this.waiters.add(check);
    });
  }
  async step(s) {
    const out = { op: s.op };
    switch (s.op) {
      case "handle":
        this.handle.push(s.event);
        break;
      case "collect":
        this.events[s.event] = [];
        break;
      case "connect": {
        if (this.socket) this.old.push(this.socket);
        const options = { url: base, namespace: s.namespace, transports: s.transports || [s.transport], codec: "json" };
        // The step's open timeout (seconds): no hello within it and the attempt failed.
        if (s.connect_timeout !== undefined) options.connectTimeout = s.connect_timeout * 1000;
        // race: false: one transport at a time (a silent one is given up by connectTimeout).
        if (s.race === false) options.raceAfter = null;
        if (broken === "no-pace") options.pace = false;
        if (s.token) {
          // A fresh credential from the kit, per use.
          const q = new URLSearchParams(Object.entries(s.token).map(([k, v]) => [k, String(v)]));
          options.getToken = async () => (await (await fetch(`${base}/conformance/token?${q}`)).json()).token;
        }
        const sock = connect(options);
        this.socket = sock;
        for (const e of this.handle) sock.on(e, (data) => ({ echo: data }));
        for (const e of Object.keys(this.events)) {
          sock.on(e, (data) => {
            this.events[e].push(data);
            this.pulse();
          });
        }
        sock.onConnect(() => {
          this.connects += 1;
          this.pulse();
        });
        sock.onState(() => this.pulse());
        await sock.ready();
        out.sid = sock.sid;
        out.transport = sock.transport;
        break;
      }
      case "call":
        try {
          const data = s.pad !== undefined ? "x".repeat(s.pad) : (s.data ?? null);
          out.ack = await this.socket.call(s.event, data, { timeout: 10000 });
        } catch (err) {
          out.error = String(err);
        }
        break;
      case "flood": {
        // Every call at once (as fast as the API allows): created in order, the client's
        // pacer (if any) decides when each leaves.
        const calls = [];
        for (let i = 0; i < s.count; i++) calls.push(this.socket.call(s.event, { i }, { timeout: s.timeout * 1000 }));
        const done = await Promise.allSettled(calls);
        out.acks = done.map((d) => (d.status === "fulfilled" ? d.value : null));
        out.errors = {};
        done.forEach((d, i) => {
          if (d.status === "rejected") out.errors[i] = String(d.reason);
        });
        break;
      }
      case "wait_events": {
        const got = this.events[s.event];
        await this.until(() => got.length >= s.count, s.timeout);
        out.events = [...got];
        break;
      }
      case "wait_reconnect":
        // count: connections in all, the first included
        out.reconnected = await this.until(() => this.connects >= (s.count ?? 2), s.timeout);
        out.recovered = this.socket.recovered;
        out.sid = this.socket.sid;
        break;
      case "wait_refreshed": {
        const r = this.socket.refresher;
        // The socket has no refresh hook to wake on: look at its counter (bounded).
        const tick = setInterval(() => this.pulse(), 50);
        out.ok = await this.until(() => r !== null && r.refreshed >= 1, s.timeout);
        clearInterval(tick);
        out.refreshed = r ? r.refreshed : 0;
        break;
      }
      case "wait_closed": {
        const sock = this.socket;
        out.closed = await this.until(() => sock.state === "disconnected", s.timeout);
        out.code = sock.lastClose ? sock.lastClose.code : null;
        break;
      }
      case "status":
        out.recovered = this.socket.recovered;
        out.sid = this.socket.sid;
        out.connects = this.connects;
        break;
      case "close":
        await this.socket.close();
        break;
      default:
        out.error = `unknown op ${s.op}`;
    }
    return out;
  }
}

async function next() {
  return await (await fetch(`${base}/conformance/next`)).json();
}

// As many workers as the kit lets runs out at once (its --parallel, in every /next
// answer; 1 when it says nothing): each runs scenarios one after another until done.
async function main() {
  const first = await next();
  const more = first.done ? 0 : (first.parallel ?? 1) - 1;
  await Promise.all([worker(first), ...Array.from({ length: more }, () => worker(null))]);
}

async function worker(todo) {
  for (;; todo = null) {
    if (todo === null) todo = await next();
    if (todo.done) return;
    const report = { scenario: todo.scenario, results: [], error: null };
    if (!HAVE[todo.transport]) {
      report.skipped = `transport unavailable: no ${todo.transport} in this runtime`;
    } else {
      const run = new Run();
      try {
        for (const s of todo.do) report.results.push(await run.step(s));
      } catch (err) {
        report.error = String(err && err.stack ? err.stack : err);
      } finally {
        for (const sock of [...run.old, run.socket]) {
          if (sock && sock.state !== "disconnected") await sock.close().catch(() => {});
        }
      }
    }
    const r = await fetch(`${base}/conformance/report`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(report),
    });
    if (!r.ok) throw new Error(`report refused: ${r.status} ${await r.text()}`);
  }
}

await main();
