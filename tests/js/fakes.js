// Recording fakes for the socket tests: a fake clock, storage, window, and an in-memory
// anywire server reached through fake WebSocket, EventSource and fetch. The server side
// is written from docs/protocol.md, independently of the client's own peer, so a
// sequencing mistake on either side shows up as a failed assertion.

import { jsonCodec, msgpackCodec } from "../../anywire/clients/js/codec.js";
import { decodeFrames } from "../../anywire/clients/js/frames.js";

/** Lets pending promise callbacks and queued microtasks run. */
export async function settle(rounds = 30) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

export class FakeClock {
  constructor() {
    this.t = 0;
    this.timers = new Map();
    this.seq = 0;
    this.setTimeout = (fn, ms = 0) => {
      const id = ++this.seq;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn, id });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
    this.now = () => this.t;
  }

  /** Moves time forward by `ms`, running due timers in order and settling after each. */
  async advance(ms) {
    const end = this.t + ms;
    await settle();
    for (;;) {
      const due = [...this.timers.values()].filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers.delete(due.id);
      this.t = Math.max(this.t, due.at);
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

export class FakeStorage {
  constructor(init = {}) {
    this.map = new Map(Object.entries(init));
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
}

/** A window with online/offline events and a document with visibilitychange. */
export class FakeWindow {
  constructor() {
    this.listeners = new Map();
    this.location = { origin: "http://page.test" };
    const doc = (this.document = { visibilityState: "visible", listeners: new Map() });
    doc.addEventListener = (type, fn) => add(doc.listeners, type, fn);
    doc.removeEventListener = (type, fn) => doc.listeners.get(type)?.delete(fn);
    // navigator.connection (Network Information API): "change" on another network.
    const conn = { listeners: new Map() };
    conn.addEventListener = (type, fn) => add(conn.listeners, type, fn);
    conn.removeEventListener = (type, fn) => conn.listeners.get(type)?.delete(fn);
    this.navigator = { connection: conn };
  }
  networkChange() {
    for (const fn of [...(this.navigator.connection.listeners.get("change") ?? [])]) fn({ type: "change" });
  }
  addEventListener(type, fn) {
    add(this.listeners, type, fn);
  }
  removeEventListener(type, fn) {
    this.listeners.get(type)?.delete(fn);
  }
  fire(type) {
    for (const fn of [...(this.listeners.get(type) ?? [])]) fn({ type });
  }
  setVisibility(state) {
    this.document.visibilityState = state;
    for (const fn of [...(this.document.listeners.get("visibilitychange") ?? [])]) fn({ type: "visibilitychange" });
  }
  count() {
    let n = 0;
    const all = [...this.listeners.values(), ...this.document.listeners.values(), ...this.navigator.connection.listeners.values()];
    for (const set of all) n += set.size;
    return n;
  }
}

function add(map, type, fn) {
  if (!map.has(type)) map.set(type, new Set());
  map.get(type).add(fn);
}

const later = (fn) => queueMicrotask(fn);

// -- the server side ------------------------------------------------------------------

class Session {
  constructor(sid, token, user, ns = "/") {
    this.sid = sid;
    this.token = token;
    this.user = user;
    this.ns = ns;
    this.outSeq = 0;
    this.outbox = []; // sequenced frames sent, not yet acknowledged
    this.inLast = 0;
    this.conn = null;
    this.log = []; // client sequenced frames processed, in order
    this.closed = null;
  }
}

/** One transport connection of a session, server side. */
class Conn {
  constructor(server, transport, codec) {
    this.server = server;
    this.transport = transport;
    this.codec = codec;
    this.session = null;
    this.closed = false;
    this.sent = []; // every frame written, for assertions
  }
  write(frames) {
    if (this.closed || frames.length === 0) return;
    this.sent.push(...frames);
    if (this.server.blackhole) return; // the network swallows it
    this._write(frames);
  }
}

class WsConn extends Conn {
  constructor(server, ws, codec) {
    super(server, "websocket", codec);
    this.ws = ws;
  }
  _write(frames) {
    const body = frames.length === 1 ? this.codec.encode(frames[0]) : this.codec.batch(frames.map((f) => this.codec.encode(f)));
    const data = this.codec.binary ? body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) : body;
    later(() => this.ws._message(data));
  }
  end(code, reason = "") {
    if (this.closed) return;
    if (code >= 4000) this.write([{ t: "close", c: code, m: reason }]);
    this.closed = true;
    later(() => this.ws._closed(code, reason));
  }
  /** The network fails: the client sees 1006. */
  drop() {
    this.closed = true;
    later(() => this.ws._closed(1006, ""));
  }
}

class SseConn extends Conn {
  constructor(server, es) {
    super(server, "sse", jsonCodec);
    this.es = es;
  }
  _write(frames) {
    const data = frames.length === 1 ? jsonCodec.encode(frames[0]) : jsonCodec.batch(frames.map((f) => jsonCodec.encode(f)));
    later(() => this.es._message(data));
  }
  end(code, reason = "") {
    if (this.closed) return;
    this.write([{ t: "close", c: code, m: reason }]);
    this.closed = true;
    later(() => this.es._error());
  }
  drop() {
    this.closed = true;
    later(() => this.es._error());
  }
}

class PollConn extends Conn {
  constructor(server, codec) {
    super(server, "longpoll", codec);
    this.control = [];
    this.held = null;
  }
  _write(frames) {
    for (const f of frames) if (f.s === undefined) this.control.push(f);
    this._answer();
  }
  body(ack) {
    const s = this.session;
    const frames = [...this.control, ...s.outbox.filter((f) => f.s > ack)];
    this.control = [];
    return frames;
  }
  _answer() {
    if (!this.held) return;
    const frames = this.body(this.held.ack);
    if (frames.length === 0) return;
    const held = this.held;
    this.held = null;
    held.resolve(this.server._respond(200, this.codec, frames));
  }
  end(code, reason = "") {
    if (this.closed) return;
    this.closed = true;
    this.finalClose = { t: "close", c: code, m: reason };
    this.sent.push(this.finalClose);
    if (this.held) {
      const held = this.held;
      this.held = null;
      held.resolve(this.server._respond(410, jsonCodec, [this.finalClose]));
    }
  }
  drop() {
    this.closed = true;
    if (this.held) {
      const held = this.held;
      this.held = null;
      held.reject(new TypeError("network error"));
    }
  }
}

/** The in-memory server. `env()` gives what to pass as the socket's `env` option. */
export class FakeServer {
  constructor({ clock, transports = ["websocket", "sse", "longpoll"], limits = {} } = {}) {
    this.clock = clock;
    this.enabled = transports;
    this.limits = {
      ping_interval: 20000, ping_timeout: 10000, poll_window: 20000, resume_window: 30000,
      ack_timeout: 10000, max_frame_size: 65536, max_batch: 100, ...limits,
    };
    this.mode = { websocket: "ok", sse: "ok", longpoll: "ok" }; // "ok" | "refuse" | "hang"
    this.negotiations = []; // {body, auth}
    this.negotiateStatus = null; // {status, code, headers?, extra?} to refuse negotiate
    this.negotiateHangs = 0; // how many negotiates get no answer at all
    this.gate = null; // a promise that holds negotiate answers back
    this.down = false; // negotiate fails at the network level
    this.sessions = new Map();
    this.tickets = new Map();
    this.openCodes = []; // codes to refuse the next openings with (e.g. 4004)
    this.conns = [];
    this.wsCreated = [];
    this.posts = [];
    this.handlers = { echo: (d) => d };
    this.answer = true; // answer requests with acks
    this.heads = new Map(); // stream -> [epoch, offset] of the last event pushed with `o`
    this.refused = new Set(); // rooms whose joins are answered "forbidden"
    this.blackhole = false; // what the server writes is swallowed
    this.blackholeUp = false; // POSTs are swallowed, never answered
    this.n = 0;
    this.expiresIn = null; // negotiate's expires_in (ms), and the lifetime a refresh grants
    this.auths = []; // in-band refreshes received: {token, transport, at}
    this.refuseAuth = false; // answer refreshes with the error ack "unauthorized"
    this.wsResume = false; // advertise and take resumes without negotiate (docs/protocol.md 2.2.1)
    this.directResumes = []; // their first frames, as received
    this.directRefusal = null; // {code, reason} to refuse the next one with
  }

  env(extra = {}) {
    const server = this;
    class WebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.sentRaw = [];
        server.wsCreated.push(this);
        later(() => server._wsOpen(this));
      }
      send(data) {
        if (this.readyState !== 1) throw new Error("not open");
        this.sentRaw.push(data);
        server._wsReceive(this, data);
      }
      close() {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        server._gone(this.conn);
      }
      _message(data) {
        if (this.readyState === 1 && this.onmessage) this.onmessage({ data });
      }
      _closed(code, reason) {
        if (this.readyState === 3) return;
        this.readyState = 3;
        if (this.onclose) this.onclose({ code, reason });
      }
    }
    class EventSource {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        later(() => server._sseOpen(this));
      }
      close() {
        if (this.readyState === 2) return;
        this.readyState = 2;
        server._gone(this.conn);
      }
      _message(data) {
        if (this.readyState !== 2 && this.onmessage) this.onmessage({ data });
      }
      _error() {
        if (this.readyState !== 2 && this.onerror) this.onerror({});
      }
    }
    return {
      WebSocket, EventSource, fetch: (url, init) => this._fetch(url, init),
      setTimeout: this.clock.setTimeout, clearTimeout: this.clock.clearTimeout, now: this.clock.now,
      random: () => 0.5, storage: null, window: null, ...extra,
    };
  }

  // -- server-side API for tests ----------------------------------------------------------
  get session() {
    return [...this.sessions.values()].at(-1);
  }

  /** Server emits an event to the latest session (sequenced, buffered if detached). */
  push(name, data, extra = {}) {
    const o = extra.o;
    if (o) {
      const head = this.heads.get(o[0]);
      if (!head || head[0] !== o[1] || head[1] < o[2]) this.heads.set(o[0], [o[1], o[2]]);
    }
    return this._send(this.session, { t: "event", e: name, d: data, ...extra });
  }

  /** Where `stream` stands now: [epoch, offset] of its last event, else ["ep", 0]. */
  head(stream) {
    return (this.heads.get(stream) ?? ["ep", 0]).slice();
  }

  live() {
    const s = this.session;
    return s && s.conn && !s.conn.closed ? s.conn : null;
  }

  /** Ends the latest session's connection with a close code (the client sees it). */
  closeLive(code, reason = "") {
    this.live().end(code, reason);
  }

  /** The network fails under the latest session's connection. */
  dropLive() {
    const conn = this.live();
    if (conn.session) conn.session.conn = null;
    conn.drop();
  }

  /** Client events processed by the latest session, as [name, data]. */
  received(name) {
    return this.session.log.filter((f) => f.t === "event" && (name === undefined || f.e === name)).map((f) => f.d);
  }

  // -- internals ----------------------------------------------------------------------
  _send(session, frame) {
    session.outSeq += 1;
    const f = { t: frame.t, s: session.outSeq, ...frame };
    const ordered = { t: f.t, s: f.s };
    for (const [k, v] of Object.entries(f)) if (!(k in ordered)) ordered[k] = v;
    session.outbox.push(ordered);
    if (session.conn) session.conn.write([ordered]);
    return ordered;
  }

  _respond(status, codec, frames, headers = {}) {
    if (status === 204) return new Response(null, { status });
    const body = codec.batch(frames.map((f) => codec.encode(f)));
    return new Response(body, { status, headers: { "content-type": codec.contentType, ...headers } });
  }

  _error(status, code, message = "", headers = {}, extra = {}) {
    const body = JSON.stringify({ error: "e", code, message, ...extra });
    return new Response(body, { status, headers: { "content-type": "application/json", ...headers } });
  }

  async _fetch(url, init = {}) {
    const u = new URL(url);
    const headers = init.headers ?? {};
    await Promise.resolve();
    if (u.pathname.endsWith("/negotiate")) return this._negotiate(JSON.parse(init.body), headers);
    if (u.pathname.endsWith("/send")) return this._post(init.body, headers);
    if (u.pathname.endsWith("/poll")) return this._poll(u, headers, init.signal);
    return this._error(404, 4502);
  }

  async _negotiate(body, headers) {
    this.negotiations.push({ body, auth: headers.Authorization ?? null });
    if (this.gate) await this.gate; // held until the test opens it
    if (this.down) throw new TypeError("Failed to fetch");
    if (this.negotiateHangs > 0) {
      this.negotiateHangs -= 1;
      return new Promise(() => {});
    }
    const refusal = this.negotiateStatus;
    if (refusal) return this._error(refusal.status, refusal.code, "", refusal.headers, refusal.extra);
    const failed = body.failed ?? [];
    const order = [
      ...this.enabled.filter((t) => body.transports.includes(t) && !failed.includes(t)),
      ...failed.filter((t) => this.enabled.includes(t)),
    ];
    const codec = body.codecs.includes("msgpack") ? body.codecs[0] : "json";
    const old = [...this.sessions.values()].find((s) => s.token === body.resume && !s.closed);
    const sid = old ? old.sid : `sid${++this.n}`;
    const ticket = `ticket${++this.n}`;
    this.tickets.set(ticket, { sid, codec, used: false, token: old ? old.token : `token-${sid}`, ns: body.ns });
    const answer = {
      v: 1, sid, token: old ? old.token : `token-${sid}`, ticket, codec, resumable: Boolean(old),
      transports: order.map((name) => ({ name, url: `/anywire/${name === "longpoll" ? "poll" : name === "websocket" ? "ws" : name}`, codec: name === "sse" ? "json" : codec })),
      send_url: "/anywire/send", ...this.limits,
      ...(this.expiresIn === null ? {} : { expires_in: this.expiresIn }),
      ...(this.wsResume && order.includes("websocket") ? { ws_resume: true } : {}),
    };
    return new Response(JSON.stringify(answer), { status: 200, headers: { "content-type": "application/json" } });
  }

  /** Redeems a ticket on `conn`: resume or fresh session, hello first. Returns a refusal code or 0. */
  _redeem(conn, ticket, last) {
    const code = this.openCodes.shift();
    if (code) return code;
    const t = this.tickets.get(ticket);
    if (!t || t.used) return 4007;
    t.used = true;
    let session = this.sessions.get(t.sid);
    const floor = session ? (session.outbox.length ? session.outbox[0].s : session.outSeq + 1) : 0;
    if (session && !session.closed && last !== null && last >= floor - 1 && last <= session.outSeq) {
      const old = session.conn;
      session.conn = conn;
      conn.session = session;
      if (old && !old.closed) old.end(4005, "transport replaced");
      session.outbox = session.outbox.filter((f) => f.s > last);
      conn.write([{ t: "hello", sid: session.sid, recovered: true, seq: last, last: session.inLast }, ...session.outbox]);
      return 0;
    }
    if (session) session.closed = "replaced";
    session = new Session(t.sid, t.token, "user", t.ns);
    this.sessions.delete(t.sid);
    this.sessions.set(t.sid, session);
    session.conn = conn;
    conn.session = session;
    // Where each stream the session receives without joining starts (protocol: `streams`).
    const streams = [`user:${t.ns}:${session.user}`, `sess:${t.ns}:${session.sid}`, `all:${t.ns}`].map((s) => [s, ...this.head(s)]);
    conn.write([{ t: "hello", sid: session.sid, recovered: false, seq: 0, last: 0, streams }]);
    return 0;
  }

  /** A resume without negotiate: [refusal code, reason] or [0] once resumed. */
  _redeemDirect(conn, first) {
    this.directResumes.push(first);
    if (!this.wsResume) return [4502, "the first frame must carry a ticket"]; // an older server
    const refusal = this.directRefusal;
    this.directRefusal = null;
    if (refusal) return [refusal.code, refusal.reason];
    const session = [...this.sessions.values()].find((s) => s.token === first.token && !s.closed);
    const floor = session ? (session.outbox.length ? session.outbox[0].s : session.outSeq + 1) : 0;
    if (!session || first.last < floor - 1 || first.last > session.outSeq) return [4007, "session not on this node: negotiate"];
    const old = session.conn;
    session.conn = conn;
    conn.session = session;
    if (old && !old.closed) old.end(4005, "transport replaced");
    session.outbox = session.outbox.filter((f) => f.s > first.last);
    // Its hello says when the credential just checked expires, as negotiate's answer would.
    const expires = this.expiresIn === null ? {} : { expires_in: this.expiresIn };
    conn.write([{ t: "hello", sid: session.sid, recovered: true, seq: first.last, last: session.inLast, ...expires }, ...session.outbox]);
    return [0, ""];
  }

  _process(session, frames, conn) {
    for (const f of frames) {
      if (["event", "ack", "join", "leave"].includes(f.t)) {
        if (f.s <= session.inLast) continue;
        if (f.s !== session.inLast + 1) {
          conn.write([{ t: "error", c: 4502, m: `client sequence gap: expected ${session.inLast + 1}, got ${f.s}` }]);
          return false;
        }
        session.inLast = f.s;
        session.log.push(f);
        this._handle(session, f);
      } else if (f.t === "rx") {
        session.outbox = session.outbox.filter((x) => x.s > f.n);
      } else if (f.t === "auth") {
        this.auths.push({ token: f.token, transport: conn.transport, at: this.clock.now() });
        if (this.refuseAuth) {
          this._send(session, { t: "ack", id: f.id, ok: false, err: { code: "unauthorized", message: "authentication failed" } });
        } else {
          this._send(session, { t: "ack", id: f.id, ok: true, d: this.expiresIn === null ? {} : { expires_in: this.expiresIn } });
        }
      } else if (f.t === "ping") {
        conn.write([{ t: "pong" }]);
      } else if (f.t === "close") {
        session.closed = "client";
        session.conn = null;
        conn.end(4500, "closed by client");
        return true;
      }
    }
    if (session.conn === conn) conn.write([{ t: "rx", n: session.inLast }]);
    return true;
  }

  _handle(session, f) {
    if (!this.answer) return;
    if (f.t === "event" && f.id !== undefined) {
      const handler = this.handlers[f.e];
      if (!handler) this._send(session, { t: "ack", id: f.id, ok: false, err: { code: "no_handler", message: `no handler for '${f.e}'` } });
      else this._send(session, { t: "ack", id: f.id, ok: true, d: handler(f.d, session) ?? null });
    } else if (f.t === "join" && this.refused.has(f.r)) {
      this._send(session, { t: "ack", id: f.id, ok: false, err: { code: "forbidden", message: "join refused" } });
    } else if (f.t === "join") {
      const presence = [{ sid: session.sid, user: session.user, meta: f.meta ?? null }];
      const position = f.since ?? this.head(`room:${session.ns}:${f.r}`);
      this._send(session, { t: "ack", id: f.id, ok: true, d: { room: f.r, presence, position, ...(f.since ? { recovered: true } : {}) } });
    } else if (f.t === "leave") {
      this._send(session, { t: "ack", id: f.id, ok: true, d: { room: f.r } });
    }
  }

  _gone(conn) {
    // The client dropped the connection without a close frame: the session detaches.
    if (!conn || conn.closed) return;
    conn.closed = true;
    if (conn.session && conn.session.conn === conn) conn.session.conn = null;
  }

  _wsOpen(ws) {
    if (this.mode.websocket === "hang") return;
    if (this.mode.websocket === "refuse" || !this.enabled.includes("websocket")) {
      ws._closed(1006, "");
      return;
    }
    ws.readyState = 1;
    if (ws.onopen) ws.onopen({});
  }

  _wsReceive(ws, data) {
    const codec = typeof data === "string" ? jsonCodec : msgpackCodec;
    const frames = decodeFrames(codec, data);
    if (!ws.conn) {
      const [first] = frames;
      const conn = new WsConn(this, ws, codec);
      ws.conn = conn;
      this.conns.push(conn);
      const direct = first.t === "resume" && first.token !== undefined;
      const [code, reason] = direct ? this._redeemDirect(conn, first) : [this._redeem(conn, first.ticket, first.t === "resume" ? first.last : null), "refused"];
      if (code) {
        conn.closed = true;
        later(() => ws._closed(code, reason));
      }
      return;
    }
    if (ws.conn.closed || !ws.conn.session) return;
    this._process(ws.conn.session, frames, ws.conn);
  }

  _sseOpen(es) {
    if (this.mode.sse === "hang") return;
    if (this.mode.sse === "refuse" || !this.enabled.includes("sse")) {
      es._error();
      return;
    }
    const u = new URL(es.url);
    const conn = new SseConn(this, es);
    es.conn = conn;
    this.conns.push(conn);
    es.readyState = 1;
    if (es.onopen) es.onopen({});
    const last = u.searchParams.get("last");
    const code = this._redeem(conn, u.searchParams.get("ticket"), last === null ? null : Number(last));
    if (code) {
      conn.closed = true;
      es._error();
    }
  }

  _post(body, headers) {
    const session = [...this.sessions.values()].find((s) => s.token === headers["X-Anywire-Token"]);
    const codec = headers["Content-Type"].includes("msgpack") ? msgpackCodec : jsonCodec;
    const frames = decodeFrames(codec, body);
    if (this.blackholeUp) return new Promise(() => {}); // swallowed, never answered
    this.posts.push(frames);
    if (!session || session.closed) return this._error(410, 4007);
    const conn = session.conn ?? { write() {}, end() {}, closed: true };
    const ok = this._process(session, frames, conn);
    return ok ? new Response(null, { status: 204 }) : this._error(400, 4502);
  }

  _poll(u, headers, signal) {
    if (this.mode.longpoll === "hang") return new Promise(() => {});
    if (this.mode.longpoll === "refuse") return this._error(404, 4507);
    const ticket = u.searchParams.get("ticket");
    if (ticket !== null) {
      const codec = this.tickets.get(ticket)?.codec === "msgpack" ? msgpackCodec : jsonCodec;
      const conn = new PollConn(this, codec);
      this.conns.push(conn);
      const last = u.searchParams.get("last");
      const code = this._redeem(conn, ticket, last === null ? null : Number(last));
      if (code) return this._respond(410, jsonCodec, [{ t: "close", c: code, m: "refused" }]);
      return this._respond(200, codec, conn.body(last === null ? 0 : Number(last)));
    }
    const session = [...this.sessions.values()].find((s) => s.token === headers["X-Anywire-Token"]);
    const conn = session && session.conn instanceof PollConn ? session.conn : this.conns.findLast((c) => c instanceof PollConn && c.session === session);
    if (!session || !conn) return this._respond(410, jsonCodec, [{ t: "close", c: 4007, m: "unknown" }]);
    if (conn.closed) return this._respond(410, jsonCodec, [conn.finalClose ?? { t: "close", c: 4006, m: "gone" }]);
    const ack = Number(u.searchParams.get("ack"));
    session.outbox = session.outbox.filter((f) => f.s > ack);
    if (this.blackhole) return new Promise(() => {});
    const frames = conn.body(ack);
    if (frames.length) return this._respond(200, conn.codec, frames);
    return new Promise((resolve, reject) => {
      const held = { ack, resolve, reject };
      if (conn.held) conn.held.resolve(new Response(null, { status: 204 }));
      conn.held = held;
      const timer = this.clock.setTimeout(() => {
        if (conn.held === held) {
          conn.held = null;
          resolve(new Response(null, { status: 204 }));
        }
      }, this.limits.poll_window);
      if (signal) {
        signal.addEventListener("abort", () => {
          this.clock.clearTimeout(timer);
          if (conn.held === held) conn.held = null;
          reject(new DOMException("aborted", "AbortError"));
        });
      }
    });
  }
}
