// The socket: negotiate, pick a transport with fallback, resume after drops, upgrade.
//
// All session bookkeeping (sequence numbers, what to resend, duplicates, receipts) is
// ClientPeer's (peer.js, a mirror of the Python core), and what spans sessions (stream
// positions, rooms, open requests) is Continuity's (continuity.js); this module does I/O
// and scheduling around them, like the Python client (anywire/clients/python/client.py).
// One async loop owns the connection cycle:
//
//   negotiate -> open transport -> hello -> frames flow -> (drop) -> backoff -> negotiate
//
// Every wait is bounded: negotiate and each transport attempt by connectTimeout, a live
// connection by the liveness check (no bytes for ping_interval + ping_timeout), acks by
// their timeout, backoff by backoffMax. Transports all have one shape (transport.js): the
// code below never branches on which one is in use.

import { CODECS, jsonCodec, own } from "./codec.js";
import { FLOOD, FORBIDDEN, NORMAL, RENEGOTIATE, TRANSPORT_REPLACED, UNAUTHORIZED, shouldReconnect } from "./closecodes.js";
import { AckError, AckTimeout, ConnectionClosed, FrameTooLarge, ProtocolError, QueueFull } from "./errors.js";
import { failedBefore, remember, resolveEnv } from "./env.js";
import { setKey } from "./values.js";
import { backoff, retryDelay } from "./backoff.js";
import { Continuity, settleLost } from "./continuity.js";
import { Handlers, Hooks, report } from "./handlers.js";
import { LIMITS, failedFor, failure, negotiate, negotiateBody, transportBase } from "./negotiate.js";
import * as F from "./frames.js";
import { ClientPeer } from "./peer.js";
import { ReceiptSender } from "./receipts.js";
import { Pacer, RESUME_COST } from "./pacer.js";
import { goodbye, race } from "./racing.js";
import { IdleCuts } from "./liveness.js";
import { LongPollTransport } from "./longpoll.js";
import { Refresher } from "./refresh.js";
import { SSETransport } from "./sse.js";
import { WebSocketTransport } from "./websocket.js";
import { usableTransports } from "./runtime.js";
import { Lifecycle } from "./lifecycle.js";
import { directResume } from "./wsresume.js";

/** The transports by protocol name (the names negotiate uses). */
export const TRANSPORTS = Object.freeze({
  websocket: WebSocketTransport,
  sse: SSETransport,
  longpoll: LongPollTransport,
});

// Size checks encode a frame before its sequence number and id are known: use the
// largest value either can take, so the estimate is never below the real size.
const PROBE = 2 ** 53 - 1;
// How long close() waits for the goodbye to be written.
const CLOSE_GRACE = 1000;

const DEFAULTS = {
  url: "",
  path: "/anywire",
  getToken: null,
  refresh: true, // with getToken: refresh the credential in-band (refresh.js)
  namespace: "/",
  transports: ["websocket", "sse", "longpoll"],
  codec: "msgpack",
  connectTimeout: 5000,
  raceAfter: 350, // ms without a hello before the next transport starts too; null: never
  ackTimeout: undefined,
  heartbeat: undefined, // ms to ask for at negotiate (liveness.js IdleCuts)
  reconnect: true,
  backoffBase: 500,
  backoffMax: 10000,
  maxQueue: 1000,
  remember: true,
  storage: undefined,
  upgrade: true,
  upgradeDelay: 1000,
  closeOnPageHide: true,
  pace: true,
  wsResume: true, // after a WebSocket drop, resume without negotiate where the server can (wsresume.js)
  env: undefined,
};

/** Creates a socket and starts connecting at once (see Socket for the options). */
export function connect(options = {}) {
  return new Socket(options);
}

export class Socket {
  /** @param {object} options see anywire.d.ts (ConnectOptions) */
  constructor(options = {}) {
    const o = { ...DEFAULTS, ...options };
    if (!Array.isArray(o.transports) || o.transports.length === 0 || o.transports.some((t) => !own(TRANSPORTS, t))) {
      throw new TypeError(`transports must be a non-empty list among ${Object.keys(TRANSPORTS)}`);
    }
    if (!own(CODECS, o.codec)) throw new TypeError("codec must be 'msgpack' or 'json'");
    for (const key of ["connectTimeout", "backoffBase", "backoffMax", "maxQueue"]) {
      if (!(o[key] > 0)) throw new TypeError(`${key} must be positive`);
    }
    if (o.getToken !== null && o.getToken !== undefined && typeof o.getToken !== "function") {
      throw new TypeError("getToken must be a function returning the token (or a Promise of it)");
    }
    if (typeof o.url !== "string" || typeof o.path !== "string" || typeof o.namespace !== "string" || !o.namespace) {
      throw new TypeError("url, path and namespace must be strings (namespace not empty)");
    }
    if (o.ackTimeout !== undefined && o.ackTimeout !== null && !(o.ackTimeout > 0)) {
      throw new TypeError("ackTimeout must be positive");
    }
    this.options = o;
    this.env = resolveEnv(o.env ?? {}, o.remember ? o.storage : null);
    o.transports = usableTransports(this.env, o.transports); // runtime.js
    const origin = this.env.window?.location?.origin ?? globalThis.location?.origin ?? "";
    this.base = (o.url || origin).replace(/\/+$/, "");
    this.path = o.path.replace(/\/+$/, "");
    /** The session's sequencing state (kept across reconnects). */
    this.peer = new ClientPeer(o.maxQueue, undefined, this.env.random);
    /** Sends the peer's receipts by the rule the server advertised (receipts.js). */
    this._receipts = new ReceiptSender(this.env, this.peer);
    /** Paces every send below the server's flood budget (pacer.js), across reconnects. */
    this.pacer = new Pacer(this.env, o.pace);
    /** Stream positions, rooms and open requests, kept across sessions. */
    this.continuity = new Continuity(this.peer, o.namespace);
    this.idleCuts = new IdleCuts(undefined, undefined, o.heartbeat); // kept across reconnects
    /** @type {string|null} the session id, once connected */
    this.sid = null;
    /** @type {boolean|null} the last hello's `recovered`: false means a fresh session */
    this.recovered = null;
    /** @type {{code: number, reason: string}|null} the last close code the server gave */
    this.lastClose = null;

    /** In-band token refresh (refresh.js); null without getToken or with refresh: false. */
    this.refresher = o.getToken && o.refresh ? new Refresher(this) : null;
    this._state = "connecting";
    this._shownTransport = null;
    this._live = null;
    this._neg = null;
    this._lastTransport = null; // of the connection that ended last (wsresume.js)
    this._everConnected = false;
    this._closed = false;
    this._ended = null;
    this._handlers = new Handlers((...answer) => this._reply(...answer));
    this._hooks = new Hooks(["state", "transport", "connect", "disconnect", "error"]);
    this._calls = new Map();
    this._readyWaiters = [];
    this._roomWaiters = new Set();
    this._wakers = new Set();
    this._attempts = new Set();
    this._endLink = null;
    this._probe = null;
    this._upgradeTimer = null;
    this._upgradeFailed = false;
    this._liveness = null;
    this._lastHeard = 0;
    this._epoch = 0; // counts the hellos that renumbered the outgoing frames
    this._storageKey = `anywire:transport:${this.base}${this.path}:${o.namespace}`;
    // Transports reported as failed in every negotiate, oldest failure first.
    const failed = o.remember ? failedBefore(this.env.storage, this._storageKey, o.transports) : [];
    this._failed = Array.isArray(failed) ? failed : [];
    // An async store (AsyncStorage): the first negotiate waits for what it remembers.
    this._recalled = Array.isArray(failed) ? null : failed.then((f) => void (this._failed = f));
    // Why each transport failed since the last negotiate: reported once, then cleared.
    this._failures = {};
    // Transports that lost a race without failing: not reported, tried after the others.
    this._lost = [];
    this._lifecycle = new Lifecycle(this); // checkNow() (lifecycle.js)
    this._listen();
    queueMicrotask(() => this._run());
  }

  // -- public state -------------------------------------------------------------------
  /** "connecting" | "connected" | "reconnecting" | "disconnected" */
  get state() {
    return this._state;
  }

  /** The transport carrying the session now, or null unless connected. */
  get transport() {
    return this._live && this._state === "connected" ? this._live.name : null;
  }

  /** Transports reported as failed to the server, oldest first. */
  get failed() {
    return this._failed.slice();
  }

  /** {room: meta} of the rooms joined: joined again by the socket itself, from where it
   * stood in each, when a reconnection could not resume the session. */
  get rooms() {
    const out = {};
    for (const [room, meta] of this.continuity.joins.rooms) setKey(out, room, meta);
    return out;
  }

  /** {room: [epoch, offset]}: where the socket stands in each room's stream. */
  get positions() {
    return this.continuity.positions.rooms();
  }

  /** [epoch, offset] where the socket stands in the user's own stream, or null. */
  get userPosition() {
    return this.continuity.positions.implicit("user");
  }

  /** Counters: `duplicates` is the number of stream events dropped because the socket
   * already had them. The server never sends one: it stays 0 unless something is wrong.
   * `idleCuts`: connections the network cut sooner than the heartbeat; `pingInterval`
   * (ms): how often the server pings this session (shorter once the socket asked). */
  get stats() {
    return {
      duplicates: this.continuity.positions.duplicates,
      // Adaptive heartbeats: idle cuts seen, and how often the server pings this session.
      idleCuts: this.idleCuts.cuts,
      pingInterval: this._neg ? this._neg.ping_interval : 0,
    };
  }

  // -- registration -------------------------------------------------------------------
  /** Registers `handler(data, info)` for server event `event`; returns an unsubscribe
   * function. If the server asked for an ack, the first handler's return value (or the
   * value of its Promise) is the answer; a throw (or rejection) answers handler_error;
   * an event nobody handles is answered no_handler. */
  on(event, handler) {
    this._handlers.add(event, handler);
    return () => this.off(event, handler);
  }

  /** Removes a handler (or, without one, every handler of `event`). */
  off(event, handler) {
    this._handlers.remove(event, handler);
  }

  /** `fn(state)` on every change of `state`. */
  onState(fn) { return this._hooks.add("state", fn); }
  /** `fn(name)` whenever `transport` changes (null when not connected). */
  onTransport(fn) { return this._hooks.add("transport", fn); }
  /** `fn({sid, recovered, transport})` after every hello that (re)connects the socket. */
  onConnect(fn) { return this._hooks.add("connect", fn); }
  /** `fn(code, reason)` when a live connection ends (code null: no code given). */
  onDisconnect(fn) { return this._hooks.add("disconnect", fn); }
  /** `fn(code, reason)` when the server rejects a frame with an error frame. */
  onError(fn) { return this._hooks.add("error", fn); }

  /** Resolves once connected (at once if connected now); rejects with ConnectionClosed
   * if the socket ends for good first. */
  ready() {
    if (this._state === "connected") return Promise.resolve();
    if (this._stopped()) return Promise.reject(this._endError());
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  // -- sending --------------------------------------------------------------------------
  /** Sends an event without waiting for an answer. Queued while offline (sent after the
   * next hello), retransmitted until confirmed, processed once by the server. Throws
   * QueueFull, FrameTooLarge, TypeError (data not sendable) or ConnectionClosed. */
  emit(event, data = null) {
    this._checkOpen();
    F.checkName(event, "event");
    this._checkFrame(F.event(PROBE, event, data));
    if (!this.peer.hasRoom()) throw new QueueFull(`${this.options.maxQueue} frames await the server's confirmation`);
    this._send(this.continuity.event(event, data));
  }

  /** Sends an event and resolves with the server handler's answer. Rejects AckTimeout
   * (default timeout: ackTimeout, else the server's ack_timeout), AckError, and the
   * errors of emit(). */
  async call(event, data = null, { timeout } = {}) {
    this._checkOpen();
    F.checkName(event, "event");
    const id = this.peer.nextId();
    return this._request(() => this.continuity.event(event, data, id), F.event(PROBE, event, data, id), timeout);
  }

  /** Joins `room` (presence `meta`; `since` = [epoch, offset] replays what the room
   * published after it). Resolves with {room, presence, count, partial, position[,
   * recovered]} (presence lists at most the server's presence_limit members); rejects
   * AckError (e.g. "forbidden"). AckTimeout only ends the wait: the join stays pending
   * and takes effect when its answer comes. Joined rooms are rejoined by themselves
   * after a lost session. */
  async join(room, { meta = null, since = null, timeout } = {}) {
    this._checkOpen();
    F.checkName(room, "room");
    return this._request(() => this.continuity.join(room, meta, since), F.join(PROBE, PROBE, room, meta, since), timeout);
  }

  /** Leaves `room`; resolves with the server's answer ({room}). */
  async leave(room, { timeout } = {}) {
    this._checkOpen();
    F.checkName(room, "room");
    return this._request(() => this.continuity.leave(room), F.leave(PROBE, PROBE, room), timeout);
  }

  async _request(build, probe, timeout) {
    this._checkFrame(probe);
    const wait = timeout ?? this._ackTimeout();
    await this._waitRoom(wait);
    this._checkOpen();
    const frame = build();
    return new Promise((resolve, reject) => {
      const timer = this.env.setTimeout(() => {
        this._calls.delete(frame.id);
        this.continuity.gaveUp(frame.id);
        reject(new AckTimeout(`no ack for request ${frame.id} within ${wait} ms`));
      }, wait);
      this._calls.set(frame.id, { resolve, reject, timer });
      this._send(frame);
    });
  }

  _send(frame) {
    // Offline, the frame waits in the peer's buffer and goes out after the next hello.
    if (this._live && this._state === "connected") this._live.send([frame]);
  }

  _checkOpen() {
    if (this._stopped()) throw this._endError();
  }

  _endError() {
    return this._ended ?? new ConnectionClosed(NORMAL, "client closed");
  }

  _stopped() {
    return this._closed || this._ended !== null;
  }

  /** Refuses, before queueing, a frame that could never be delivered (it would block the
   * retransmission queue for good): it must encode with every codec the session may end
   * up on (fallback can move it to JSON) and fit max_frame_size. */
  _checkFrame(probe) {
    const sizeCodec = this._live ? this._live.codec : CODECS[this.options.codec];
    const max = this._neg ? this._neg.max_frame_size : LIMITS.max_frame_size;
    for (const codec of new Set([sizeCodec, CODECS[this.options.codec], jsonCodec])) {
      const encoded = codec.encode(probe);
      if (codec === sizeCodec && codec.size(encoded) > max) {
        throw new FrameTooLarge(`encoded frame is ${codec.size(encoded)} bytes, the limit is ${max}`);
      }
    }
  }

  _waitRoom(wait) {
    if (this.peer.hasRoom()) return Promise.resolve();
    const full = `${this.options.maxQueue} frames await the server's confirmation`;
    if (this._state !== "connected") return Promise.reject(new QueueFull(`${full} (disconnected)`));
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this._stopped()) finish(this._endError());
        else if (this.peer.hasRoom()) finish(null);
        else if (this._state !== "connected") finish(new QueueFull(`${full} (disconnected)`));
      };
      const finish = (err) => {
        this.env.clearTimeout(timer);
        this._roomWaiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      const timer = this.env.setTimeout(() => finish(new QueueFull(`${full} (waited ${wait} ms)`)), wait);
      this._roomWaiters.add(check);
    });
  }

  _roomChanged() {
    for (const check of [...this._roomWaiters]) check();
  }

  _ackTimeout() {
    return this.options.ackTimeout ?? (this._neg ? this._neg.ack_timeout : LIMITS.ack_timeout);
  }

  // -- lifecycle ------------------------------------------------------------------------
  /** Ends the session for good: sends close{4500} (the server ends the session at once)
   * and stops. Pending requests reject with ConnectionClosed. Resolves once the goodbye
   * was written (bounded). Safe to call more than once. */
  close() {
    if (this._closed) return this._closing ?? Promise.resolve();
    const live = this._state === "connected" ? this._live : null;
    this._closed = true;
    this._stop();
    if (!live) {
      this._closing = Promise.resolve();
      return this._closing;
    }
    live.onframes = live.onclose = live.onalive = null;
    // Through the ordered queue, so it follows every frame emitted before; a POST that
    // carries it outlives the page if the page is going away.
    live.final = true;
    live.send([F.close(NORMAL, "client closed")]);
    this._closing = live.flush(CLOSE_GRACE).then(() => live.close());
    return this._closing;
  }

  /** Checks the connection at once (lifecycle.js): call it when a mobile app comes back
   * to the foreground or its network changes. Resolves true if the server answered a
   * ping within `timeout` ms (default 3000); otherwise the socket reconnects and resumes
   * now, instead of after the next heartbeat, and it resolves false. */
  checkNow(options) {
    return this._lifecycle.check(options);
  }

  /** Drops the live connection without telling the server, as a network failure would:
   * the socket then reconnects and resumes. For tests and demos. */
  dropConnection() {
    if (this._live) this._live.abort("connection dropped on purpose");
  }

  /** The socket ended for good (terminal close code, reconnect disabled, refused). */
  _finish(code, reason) {
    if (this._stopped()) return;
    this._ended = new ConnectionClosed(code, reason);
    if (this._live) this._live.close();
    this._stop();
  }

  /** Common end of close() and _finish(): every wait ends, every timer stops. */
  _stop() {
    const err = this._endError();
    this._disarmLiveness();
    this._receipts.stop();
    if (this.refresher) this.refresher.stop();
    this.env.clearTimeout(this._upgradeTimer);
    if (this._probe && this._probe.transport) this._probe.transport.close();
    for (const t of [...this._attempts]) t.abort("socket closed");
    this._live = null;
    this._setState("disconnected");
    for (const call of this._calls.values()) {
      this.env.clearTimeout(call.timer);
      call.reject(err);
    }
    this._calls.clear();
    for (const w of this._readyWaiters.splice(0)) w.reject(err);
    this._roomChanged();
    this._unlisten();
    this._wake();
    if (this._endLink) this._endLink({ code: null, reason: "stopped" });
  }

  _setState(state) {
    if (state === this._state) return;
    this._state = state;
    // With the heartbeat the session uses (adaptive heartbeats: shorter after idle cuts).
    this._hooks.emit("state", state, this.stats);
    this._roomChanged(); // backpressure waiters re-check (a disconnect ends their wait)
    if (state === "connected") for (const w of this._readyWaiters.splice(0)) w.resolve();
    this._showTransport();
  }

  _showTransport() {
    const name = this.transport;
    if (name === this._shownTransport) return;
    this._shownTransport = name;
    this._hooks.emit("transport", name);
  }

  // -- connection cycle -----------------------------------------------------------------
  async _run() {
    if (this._stopped()) return; // closed before it even started
    // The first state is "connecting" from the start; hooks registered right after
    // connect() hear it too.
    this._hooks.emit("state", this._state);
    try {
      if (this._recalled) await this._recalled;
      await this._cycle();
    } catch (err) {
      // A bug or something truly unexpected: never leave callers hanging on a dead loop.
      report(err);
      this._finish(null, `client failed: ${err && err.message}`);
    }
  }

  _delays() {
    return backoff(this.options.backoffBase, this.options.backoffMax, this.env.random);
  }

  async _cycle() {
    let delays = this._delays();
    while (!this._stopped()) {
      this._setState(this._everConnected ? "reconnecting" : "connecting");
      let link;
      try {
        link = await this._connectRound();
      } catch (err) {
        if (this._stopped()) return;
        if (err.terminal || !this.options.reconnect) {
          this._finish(err.code ?? null, err.message);
          return;
        }
        await this._sleep(retryDelay(delays, err.retryAfter), err.retryAfter ?? 0);
        continue;
      }
      if (this._stopped()) {
        link.transport.close();
        return;
      }
      const started = this.env.now();
      const { code, reason } = await this._attach(link);
      if (this._stopped()) return;
      if (!this.options.reconnect || (code !== null && !shouldReconnect(code))) {
        this._finish(code, reason);
        return;
      }
      this._setState("reconnecting");
      if (code === FLOOD) this.pacer.spent(); // overspent (pace off?): start slow
      // Only a connection that outlived the longest delay resets the schedule, so a
      // server that accepts and then drops at once is not hammered.
      if (this.env.now() - started >= this.options.backoffMax) delays = this._delays();
      await this._sleep(delays.next().value);
    }
  }

  /** Waits `ms`, or less if woken (back online, page visible again, closed); `floor` ms at least, unless closed. */
  _sleep(ms, floor = 0) {
    const earliest = this.env.now() + floor;
    return new Promise((resolve) => {
      const done = () => {
        if (!this._stopped() && this.env.now() < earliest) return;
        this.env.clearTimeout(timer);
        this._wakers.delete(done);
        resolve();
      };
      const timer = this.env.setTimeout(done, ms);
      this._wakers.add(done);
    });
  }

  _wake() {
    for (const done of [...this._wakers]) done();
  }

  _markFailed(name, why) {
    this._failed = this._failed.filter((n) => n !== name);
    this._failed.push(name);
    this._failures[name] = why; // why, told to the server once (negotiate's `failures`)
  }

  /** Negotiates and tries the offered transports in order, negotiating again after each
   * failure with the failed ones reported, until one delivers a hello; a fresh connect
   * races them (racing.js). Transports that lost a race are tried last. */
  async _connectRound() {
    const tried = new Set();
    const errors = [];
    let again = 0;
    const direct = await directResume(this); // one connection, no negotiate; null: negotiate
    if (direct) return direct;
    for (;;) {
      const neg = await this._negotiate();
      if (this._stopped()) throw failure("socket closed");
      const offers = neg.transports.filter((o) => this.options.transports.includes(o.name) && !tried.has(o.name));
      if (offers.length === 0) {
        throw failure(`no transport worked: ${errors.join("; ") || "no common transport"}`);
      }
      offers.sort((a, b) => this._lost.includes(a.name) - this._lost.includes(b.name)); // stable
      this.pacer.configure(neg.flood_rate, neg.flood_burst);
      const resuming = neg.resumable && this.peer.sid !== null; // two resumes would fight: not raced
      if (resuming) await this.pacer.take(RESUME_COST); // as the server charges
      const { won, failed, lost } = await race({
        neg, offers, after: resuming ? null : this.options.raceAfter, stopped: () => this._stopped(),
        open: (n, offer) => this._attempt(offer, n), renegotiate: () => this._negotiate(),
        sleep: (ms) => new Promise((resolve) => this.env.setTimeout(resolve, ms)),
      });
      if (this._stopped()) throw failure("socket closed");
      for (const [name, err] of failed) {
        const code = err.code ?? null;
        if (code === UNAUTHORIZED || code === FORBIDDEN) {
          if (won) won.transport.close();
          throw failure(err.message, code, true);
        }
        // A stale ticket, an expired credential, a restarting server: negotiate again
        // (getToken() gives a fresh credential), without blaming the transport.
        if (RENEGOTIATE.has(code) && again++ < 2) continue;
        tried.add(name);
        this._markFailed(name, err.why ?? "error");
        errors.push(err.message);
      }
      for (const name of lost) if (!this._lost.includes(name)) this._lost.push(name);
      if (won) {
        this._lost = this._lost.filter((n) => n !== won.transport.name);
        return won;
      }
    }
  }

  /** _open() as a race contender: {promise, cancel}. */
  _attempt(offer, neg) {
    let cancel = null;
    const promise = this._open(offer, neg, (fn) => (cancel = fn));
    return { promise, cancel: () => cancel() };
  }

  /** POST {path}/negotiate with a fresh credential; bounded by connectTimeout. */
  async _negotiate() {
    const o = this.options;
    const resume = this._neg && this.peer.sid !== null ? this._neg.token : null;
    const body = negotiateBody(o, this._failed, resume, this.continuity.since(), this._failures);
    this._failures = {};
    const ask = this.idleCuts.requestMs(); // adaptive heartbeats (liveness.js)
    if (ask !== null) body.ping_interval = ask;
    if (resume) await this.pacer.take(RESUME_COST); // so does a negotiate that resumes
    return negotiate(this.env, this.base + this.path + "/negotiate", body, o.getToken, o.connectTimeout);
  }

  /** Opens one transport; resolves with {neg, transport, hello, rest, early} once the
   * hello arrived, rejects (with the server's code, if any) if it failed first. */
  _open(offer, neg, onCancel = null, opening = null) {
    return new Promise((resolve, reject) => {
      const t = new TRANSPORTS[offer.name]({
        base: transportBase(this.base, this.path, neg), offer, neg, codec: CODECS[offer.codec] ?? jsonCodec, env: this.env, pacer: this.pacer,
      });
      const resuming = neg.resumable && this.peer.sid !== null;
      const first = opening ?? (resuming ? F.resume(neg.ticket, this.peer.inLast) : F.connect(neg.ticket));
      // What the transport reports between the hello and _install(): replayed there.
      const early = [];
      let settled = false;
      const settle = (err, value, lost = false) => {
        if (settled) return;
        settled = true;
        this.env.clearTimeout(timer);
        this._attempts.delete(t);
        if (err) {
          if (lost) goodbye(t); // the server may hold its session already
          else t.close();
          reject(err);
        } else resolve(value);
      };
      const timer = this.env.setTimeout(() => settle(failedFor("timeout", failure(`${offer.name}: no hello within ${this.options.connectTimeout} ms`))), this.options.connectTimeout);
      if (onCancel) onCancel(() => settle(failure(`${offer.name}: lost the race`), null, true));
      t.onframes = (frames) => {
        if (settled) return void early.push(["frames", frames]);
        const [hello, ...rest] = frames;
        if (hello.t !== "hello") return settle(failure(`${offer.name}: expected hello, got ${hello.t}`));
        const problem = this.peer.helloProblem(hello);
        if (problem !== null) return settle(failure(`${offer.name}: impossible hello: ${problem}`));
        settle(null, { neg, transport: t, hello, rest, early });
      };
      t.onalive = () => {
        if (settled) early.push(["alive"]);
      };
      t.onclose = (code, reason) => {
        if (settled) return void early.push(["close", code, reason]);
        const why = offer.name === "websocket" && !t.upgraded ? "upgrade" : "closed";
        settle(failedFor(why, failure(`${offer.name}: ${reason || "closed before the hello"}`, code)));
      };
      this._attempts.add(t);
      t.open(first);
    });
  }

  /** Makes `link` the session's connection; resolves with {code, reason} when it ends
   * (an upgrade swaps the transport under the same link). */
  _attach(link) {
    const ended = new Promise((resolve) => {
      this._endLink = (result) => {
        this._endLink = null;
        resolve(result);
      };
    });
    this._install(link);
    return ended;
  }

  _install({ neg, transport, hello, rest, early }) {
    const lost = !hello.recovered && this.sid !== null; // a session existed before
    const [resend, unanswerable] = this.continuity.onHello(hello);
    const upgrade = this._live !== null; // swapping the transport of a live connection
    this._neg = neg;
    this._live = transport;
    this.peer.setRxRule(neg.rx); // the receipt rule this server asks for
    this.sid = hello.sid;
    this.recovered = hello.recovered;
    this._everConnected = true;
    this._helloAt = this.env.now();
    if (this.options.remember) remember(this.env.storage, this._storageKey, transport.name);
    transport.onframes = (frames) => this._onFrames(transport, frames);
    transport.onalive = () => this._heard(transport);
    transport.onclose = (code, reason) => this._onClose(transport, code, reason);
    // Receipts from POST answers hold while the numbering they refer to does: until a
    // hello renumbers (recovered: false), even after this transport has ended.
    const epoch = (this._epoch += hello.recovered ? 0 : 1);
    transport.onconfirm = (n) => {
      if (epoch === this._epoch) {
        this.peer.confirm(n);
        this._roomChanged();
      }
    };
    // Rejoins and unconfirmed frames go first into the ordered queue, before anything new.
    transport.send(resend);
    settleLost(this._calls, unanswerable, (timer) => this.env.clearTimeout(timer)); // continuity.js
    this._armLiveness(transport);
    this._setState("connected");
    this._showTransport();
    if (this.refresher) this.refresher.start(neg.expires_in); // an upgrade negotiated afresh too
    if (!upgrade || lost) this._hooks.emit("connect", { sid: this.sid, recovered: this.recovered, transport: transport.name });
    if (rest.length) this._onFrames(transport, rest);
    for (const [kind, a, b] of early) {
      if (kind === "frames") transport.onframes(a);
      else if (kind === "alive") transport.onalive();
      else transport.onclose(a, b);
    }
    this._scheduleUpgrade();
  }


  _onClose(t, code, reason) {
    if (t !== this._live) return;
    if (this._probe && code === TRANSPORT_REPLACED) {
      // The server moved the session to the probe's WebSocket: not a disconnect. The probe
      // finishes the switch (or, if it fails after all, ends this link).
      this._probe.replaced = { code, reason };
      return;
    }
    this._detach(t, code, reason);
  }

  _detach(t, code, reason) {
    // A buffering intermediary holds the stream back until the server gives up on the
    // silent client (4001) and ends it: then hello and close arrive together. The server
    // started its silence window when it sent the hello; a 4001 much sooner after the
    // hello arrived means the hello itself was held back: this transport cannot carry the
    // session, fall back. (With the defaults the connect timeout catches this first.)
    const lived = this.env.now() - this._helloAt;
    if (code === 4001 && lived < (this._neg.ping_interval + this._neg.ping_timeout) / 2) {
      this._markFailed(t.name, "buffered");
    }
    this.idleCuts.ended(t.idleAtEnd, code, this._neg.ping_interval);
    this._lastTransport = t.name; // a WebSocket's: the next resume may skip negotiate
    this._live = null;
    this._disarmLiveness();
    this._receipts.stop();
    if (this.refresher) this.refresher.stop();
    this.env.clearTimeout(this._upgradeTimer);
    if (this._probe) {
      this._probe.cancelled = true;
      if (this._probe.transport) this._probe.transport.close();
    }
    if (code !== null) this.lastClose = { code, reason };
    this._hooks.emit("disconnect", code, reason);
    // Said at once (the loop decides a moment later), so state and transport agree.
    if (this.options.reconnect && (code === null || shouldReconnect(code))) this._setState("reconnecting");
    this._showTransport();
    if (this._endLink) this._endLink({ code, reason });
  }

  // -- receiving ------------------------------------------------------------------------
  _onFrames(t, frames) {
    if (t !== this._live) return;
    this._heard(t);
    try {
      for (const frame of frames) {
        this._handle(t, frame);
        if (t !== this._live) return;
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      // E.g. a sequence gap: frames were lost. Resuming on a new connection replays them.
      t.abort(`protocol error: ${err.message}`);
      return;
    }
    if (t.sendsRx) this._receipts.afterMessage(t);
    this._roomChanged();
  }

  _handle(t, frame) {
    switch (frame.t) {
      case "ping": {
        // Answer at once, with our receipt so the server can trim its outbox.
        const rx = this.peer.rxDue(true);
        t.send(rx ? [F.pong(), rx] : [F.pong()]);
        return;
      }
      case "error":
        this._hooks.emit("error", frame.c, frame.m);
        return;
      case "close": case "hello": case "pong": case "connect": case "resume":
        return; // close: the transport ends right after; the others mean nothing here
      default:
        break;
    }
    const handled = this.peer.receive(frame); // sequencing and dedupe; throws on a gap
    if (!handled) return;
    if (handled.t === "event") {
      // Stream positions: the second line of dedupe, and where to catch up from.
      if (this.continuity.accept(handled)) this._handlers.dispatch(handled);
    } else if (handled.t === "ack") {
      const join = this.continuity.answered(handled); // a join's answer applies even unawaited
      if (join && join.rejoin && !handled.ok) {
        report(new Error(`rejoining '${join.room}' was refused: ${handled.err.code} ${handled.err.message}`));
      }
      const call = this._calls.get(handled.id);
      if (!call) return; // the waiter gave up already
      this._calls.delete(handled.id);
      this.env.clearTimeout(call.timer);
      if (handled.ok) call.resolve(handled.d);
      else call.reject(new AckError(handled.err.code, handled.err.message));
    }
  }

  /** Answers a server request. Never blocks: with the retransmission buffer full the ack
   * is dropped (the server's wait times out). */
  _reply(id, ok, data, code = "", message = "") {
    if (this._stopped()) return;
    let err = ok ? undefined : { code, message };
    try {
      this._checkFrame(F.ack(PROBE, id, ok, data, err));
    } catch (e) {
      ok = false;
      data = null;
      err = { code: "handler_error", message: `bad result: ${e.message}` };
    }
    if (!this.peer.hasRoom()) {
      report(new Error(`retransmission buffer full, ack ${id} dropped`));
      return;
    }
    this._send(this.peer.ack(id, ok, ok ? (data === undefined ? null : data) : undefined, err));
  }

  // -- liveness -------------------------------------------------------------------------
  _heard(t) {
    if (t !== this._live) return;
    this._lastHeard = this.env.now();
    this._lifecycle.heard();
  }

  _armLiveness(t) {
    this._disarmLiveness();
    this._lastHeard = this.env.now();
    const limit = t.silenceLimit();
    const check = () => {
      if (t !== this._live) return;
      const quiet = this.env.now() - this._lastHeard;
      if (quiet >= limit) {
        t.abort(`server silent for ${limit} ms: connection presumed dead`);
        return;
      }
      this._liveness = this.env.setTimeout(check, limit - quiet);
    };
    this._liveness = this.env.setTimeout(check, limit);
    this._checkLiveness = check;
  }

  _disarmLiveness() {
    this.env.clearTimeout(this._liveness);
    this._liveness = null;
    this._checkLiveness = null;
  }

  /** The network changed under a live connection (back online, another network, a tab
   * waking up): a TCP connection may be half-open and silent for good. checkNow() pings
   * the server (it answers pong at once) and drops the connection, to resume on a new
   * one, if nothing at all comes back within its timeout. */
  _verifyLive() {
    if (this._live && this._state === "connected") this.checkNow().catch(report);
  }

  // -- upgrade --------------------------------------------------------------------------
  _scheduleUpgrade() {
    const live = this._live;
    const o = this.options;
    if (!o.upgrade || !live || live.name === "websocket" || this._upgradeFailed || this._probe) return;
    if (!o.transports.includes("websocket") || !this.env.WebSocket) return;
    if (!this._neg.transports.some((t) => t.name === "websocket")) return;
    this.env.clearTimeout(this._upgradeTimer);
    this._upgradeTimer = this.env.setTimeout(() => this._upgrade(live), o.upgradeDelay);
  }

  /** Probes WebSocket in the background while `old` carries the session. An upgrade is a
   * resume on a new transport: negotiate with `resume`, open the WebSocket with a resume
   * frame; the server replaces the old transport (4005, not a disconnect here) and
   * replays what is unacknowledged; the peer's dedupe and sequencing keep the order. */
  async _upgrade(old) {
    if (old !== this._live || this._stopped() || this._probe) return;
    const probe = { cancelled: false, replaced: null, transport: null };
    this._probe = probe;
    try {
      const neg = await this._negotiate();
      if (probe.cancelled || this._stopped()) return;
      const offer = neg.transports.find((t) => t.name === "websocket");
      if (!offer || !neg.resumable) throw failure("no resumable WebSocket offer");
      const pending = this._open(offer, neg);
      probe.transport = [...this._attempts].find((t) => t.name === "websocket") ?? null;
      let link;
      try {
        link = await pending;
      } catch (err) {
        err.blame = true; // the WebSocket itself failed (not negotiate)
        throw err;
      }
      if (probe.cancelled || this._stopped() || old !== this._live) {
        link.transport.close();
        return;
      }
      old.onframes = old.onclose = old.onalive = null;
      old.close();
      this._failed = this._failed.filter((n) => n !== "websocket");
      this._probe = null;
      this._install(link);
    } catch (err) {
      if (probe.cancelled || this._stopped()) return;
      // A WebSocket that failed is not probed again by this socket; a failed negotiate
      // only ends this probe (the next connection schedules another).
      if (err.blame) {
        this._upgradeFailed = true;
        this._markFailed("websocket", err.why ?? "error");
      }
      if (probe.replaced && old === this._live) {
        this._probe = null;
        this._detach(old, probe.replaced.code, probe.replaced.reason);
      }
    } finally {
      if (this._probe === probe) this._probe = null;
    }
  }

  // -- browser events -------------------------------------------------------------------
  _listen() {
    const w = this.env.window;
    if (!w || typeof w.addEventListener !== "function") return;
    const doc = w.document ?? null;
    this._listeners = [
      [w, "online", () => {
        this._wake(); // a backoff in progress ends now
        this._verifyLive(); // a live connection may not have survived the change
      }],
      // The network is gone: the connection is dead even if no close has arrived yet.
      [w, "offline", () => this._live && this._live.abort("browser went offline")],
      // The page is going away for good (not into the back/forward cache): end the
      // session now, so others see this member leave at once rather than after the
      // resume window. A new page load starts a new session anyway.
      [w, "pagehide", (ev) => {
        if (this.options.closeOnPageHide && !(ev && ev.persisted)) this.close();
      }],
      // Another network (Wi-Fi to cellular): same check as back online.
      [w.navigator && w.navigator.connection, "change", () => this._verifyLive()],
      [doc, "visibilitychange", () => {
        if (doc.visibilityState !== "visible") return;
        // Timers are throttled in background tabs: check at once instead of waiting.
        if (this._live && this._checkLiveness) {
          this._checkLiveness();
          this._verifyLive();
        } else this._wake();
      }],
    ].filter(([target]) => target && typeof target.addEventListener === "function");
    for (const [target, type, fn] of this._listeners) target.addEventListener(type, fn);
  }

  _unlisten() {
    for (const [target, type, fn] of this._listeners ?? []) target.removeEventListener(type, fn);
    this._listeners = [];
  }
}
