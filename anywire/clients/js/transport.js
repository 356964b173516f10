// What every transport shares. A transport is one connection attempt and presents the
// shape of the browser WebSocket API, so the socket never branches on the concrete one:
//
//   t.onopen = () => {}            the underlying channel opened (informational)
//   t.onframes = (frames) => {}    decoded, validated frames, in order (first: hello)
//   t.onalive = () => {}           a sign of life without frames (an empty poll answer)
//   t.onclose = (code, reason) => {}  ended: the server's close code, or null if none
//   t.open(first)                  connect/resume frame; then frames flow
//   t.send(frames)                 queued; written in order, batched within the limits,
//                                  at most one write (one POST) in flight
//   t.flush(ms)                    resolves once everything queued is written (bounded)
//   t.abort(reason)                drop without a word to the server; fires onclose(null)
//   t.close()                      drop silently (no callback): the socket is done with it
//
// onclose fires at most once, and never after close().

import { batches, errorCode, splitAtClose } from "./frames.js";
import { HalfOpenWatch } from "./liveness.js";

export class Transport {
  /** @param {object} ctx {base, offer, neg, codec, env} */
  constructor(ctx) {
    this.base = ctx.base;
    this.offer = ctx.offer;
    this.neg = ctx.neg;
    this.codec = ctx.codec;
    this.env = ctx.env;
    this.pacer = ctx.pacer ?? null; // every write and poll waits on it (pacer.js)
    this.closed = false;
    this.ready = false; // may write
    this.onopen = null;
    this.onframes = null;
    this.onalive = null;
    this.onclose = null;
    this.onconfirm = null; // (n): the server processed every frame up to n
    this._outbox = [];
    this._writing = false;
    this._scheduled = false;
    this._idle = [];
    this.final = false; // set by the socket for its goodbye (close frame)
    // Silence for ping_timeout after a send the server must answer: half-open, dead.
    this.watch = new HalfOpenWatch(this.neg.ping_timeout, this.env, (reason) => this.abort(reason));
    // Idle time (ms) when the network ended the connection (null: the socket dropped it,
    // or it has not ended), for adaptive heartbeats (liveness.js IdleCuts).
    this.lastTraffic = this.env.now();
    this.receivedBytes = 0; // of the messages received (the receipt rule's byte limit)
    this.idleAtEnd = null;
    this._dropped = false;
  }

  /** Whether a completed write means the server processed it (a POST's 204 does; a
   * WebSocket send only means the bytes were handed to the browser). */
  get confirmsWrites() {
    return false;
  }

  /** Whether the socket acknowledges with rx frames here (long-poll uses ack=N). */
  get sendsRx() {
    return true;
  }

  /** How long the server may stay silent (ms) before the connection is presumed dead. */
  silenceLimit() {
    return this.neg.ping_interval + this.neg.ping_timeout;
  }

  /** @param {object} first the connect or resume frame */
  open(first) {
    throw new Error("not implemented");
  }

  send(frames) {
    if (this.closed || frames.length === 0) return;
    this._outbox.push(...frames);
    // Coalesce what is sent in one turn of the event loop into as few messages as possible.
    if (!this._scheduled) {
      this._scheduled = true;
      queueMicrotask(() => {
        this._scheduled = false;
        this._pump();
      });
    }
  }

  /** Resolves once nothing waits to be written (or after `ms`, or when the transport ends). */
  flush(ms) {
    if (this._isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.env.setTimeout(resolve, ms);
      this._idle.push(() => {
        this.env.clearTimeout(timer);
        resolve();
      });
    });
  }

  _isIdle() {
    return this.closed || (!this._writing && this._outbox.length === 0 && !this._scheduled);
  }

  _settle() {
    if (!this._isIdle()) return;
    const waiters = this._idle.splice(0);
    for (const w of waiters) w();
  }

  async _pump() {
    if (this._writing || !this.ready) return;
    this._writing = true;
    try {
      while (this._outbox.length && !this.closed) {
        const frames = this._outbox.splice(0);
        const maxBatch = Math.min(this.neg.max_batch, this.pacer ? this.pacer.maxCost() : Infinity);
        for (const { body, last, count } of batches(this.codec, frames, maxBatch, this.neg.max_frame_size)) {
          if (this.pacer) await this.pacer.take(count); // one flood token a frame
          if (this.closed) return;
          // Armed when the write starts (a paced wait is not silence), and before it: a
          // write into a black hole may never complete.
          this.watch.sent(frames);
          this.lastTraffic = this.env.now();
          await this._write(body);
          if (this.confirmsWrites) this.watch.heard(); // the POST was answered
          // A POST answered 2xx was processed, in order, before the answer: as good a
          // receipt as an rx (which may never come if the downstream ends meanwhile).
          if (this.confirmsWrites && last > 0 && this.onconfirm) this.onconfirm(last);
          if (this.closed) return;
        }
      }
    } catch (err) {
      this._end(err.code ?? null, `send failed: ${err.message}`);
    } finally {
      this._writing = false;
      this._settle();
    }
  }

  /** Ends the session a contender that lost a race may hold already (a buffering proxy
   * holds its hello back): `frame` (a close) is written even before the hello on the
   * HTTP transports (a POST for a session not yet created is merely refused), then the
   * transport is closed; bounded by `ms`. */
  hangUp(frame, ms) {
    this.send([frame]);
    if (!this.ready && !this.closed && this.confirmsWrites) this._opened();
    return this.flush(ms).then(() => this.close());
  }

  /** Writes one encoded message; rejects with {code, message} when refused. */
  async _write(body) {
    throw new Error("not implemented");
  }

  /** Marks the transport writable and writes what was queued meanwhile. */
  _opened() {
    this.ready = true;
    if (this.onopen) this.onopen();
    this._pump();
  }

  /** Hands decoded frames to the socket (`size`: the message's bytes, or its length for
   * text); a close frame ends the transport. */
  _deliver(frames, size = 0) {
    if (this.closed) return;
    this.receivedBytes += size;
    this._heard();
    if (frames.length === 0) return;
    const [kept, close] = splitAtClose(frames);
    if (this.onframes) this.onframes(kept);
    if (close) this._end(close.c, close.m);
  }

  _alive() {
    if (!this.closed) this._heard();
    if (!this.closed && this.onalive) this.onalive();
  }

  _heard() {
    this.watch.heard();
    this.lastTraffic = this.env.now();
  }

  /** Ends the transport (first reason wins) and tells the socket. */
  _end(code, reason) {
    if (this.closed) return;
    this.closed = true;
    if (!this._dropped) this.idleAtEnd = this.env.now() - this.lastTraffic;
    this.watch.stop();
    this._teardown();
    this._settle();
    if (this.onclose) this.onclose(code, reason);
  }

  /** Releases the underlying connection. */
  _teardown() {}

  abort(reason = "connection dropped") {
    this._dropped = true;
    this._end(null, reason);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.watch.stop();
    this._teardown();
    this._settle();
  }

  /** The upstream POST of the HTTP transports; a refusal ends the transport. */
  async _post(body) {
    const res = await this.env.fetch(this.base + this.neg.send_url, {
      method: "POST",
      headers: { "Content-Type": this.codec.contentType, "X-Anywire-Token": this.neg.token },
      body,
      cache: "no-store",
      // The goodbye of close() must arrive even if the page is being unloaded.
      keepalive: this.final === true,
    });
    if (res.status >= 300) throw this._paced(await refused(res, "send"));
  }

  /** A flood refusal's Retry-After is left to the pacer: the next send or resume waits
   * it out. Returns `err`. */
  _paced(err) {
    if (err.code === 4008 && this.pacer) this.pacer.spent(err.retryAfter);
    return err;
  }
}

/** The error for an HTTP refusal, with the close code of its body (a 410 without one
 * still means the session is gone: 4007; any other status without one comes from
 * something on the way, a proxy or a restart: no code, so the socket falls back or
 * reconnects rather than giving up). */
export async function refused(res, what) {
  let code = null;
  try {
    code = errorCode(await res.text());
  } catch {
    code = null;
  }
  if (code === null && res.status === 410) code = 4007;
  const err = new Error(`${what} refused: HTTP ${res.status}`);
  err.code = code;
  err.retryAfter = Number((res.headers && res.headers.get && res.headers.get("retry-after")) || 0) || 0;
  return err;
}

/** The WebSocket URL for `path` on the server at `base` (http -> ws, https -> wss). */
export function wsUrl(base, path) {
  if (base.startsWith("https://")) return "wss://" + base.slice(8) + path;
  if (base.startsWith("http://")) return "ws://" + base.slice(7) + path;
  return base + path;
}

/** `url` with query parameters added. */
export function withQuery(url, params) {
  const q = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join("&");
  return url + (url.includes("?") ? "&" : "?") + q;
}
