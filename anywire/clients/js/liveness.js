// Half-open detection: a connection that stops answering what the client sends is dead.
//
// The server answers every client frame that needs it quickly: a sequenced frame (event,
// ack, join, leave) gets an `rx` within ack_delay (0.1 s), a `ping` gets a `pong`
// (protocol section 6.4). So once the client has sent such a frame, hearing nothing at
// all for ping_timeout means the path is half-open (a NAT or proxy dropped it silently,
// the network changed under the page): the transport is aborted and the socket resumes on
// a new one. Without this watch a half-open path is noticed only by the heartbeat, after
// ping_interval + ping_timeout.

const ANSWERED = new Set(["event", "ack", "join", "leave", "ping"]);

/** Whether the server must answer one of `frames` promptly (an rx or a pong). */
export function expectsAnswer(frames) {
  return frames.some((f) => ANSWERED.has(f.t));
}

/** Watches one transport: `onDead(reason)` is called once if nothing at all is heard for
 * `timeout` ms after a send that needed an answer. Timers and clock come from `env`. */
export class HalfOpenWatch {
  constructor(timeout, env, onDead) {
    this.timeout = timeout;
    this.env = env;
    this.onDead = onDead;
    this.since = null; // when the oldest unanswered send left
    this._timer = null;
  }

  /** `frames` are being written now. */
  sent(frames) {
    if (this.since !== null || !expectsAnswer(frames)) return;
    this.since = this.env.now();
    this._timer = this.env.setTimeout(() => this.check(), this.timeout);
  }

  /** Anything came from the server: the path works. */
  heard() {
    this.since = null;
    this.stop();
  }

  /** Declares the path dead if the wait is over; also called when timers may have been
   * throttled (a page back in the foreground). */
  check() {
    if (this.since === null) return;
    const left = this.since + this.timeout - this.env.now();
    this.env.clearTimeout(this._timer);
    if (left > 0) {
      this._timer = this.env.setTimeout(() => this.check(), left);
      return;
    }
    this._timer = null;
    this.since = null;
    this.onDead(`no answer from the server within ${this.timeout} ms of a send: connection presumed half-open`);
  }

  stop() {
    this.env.clearTimeout(this._timer);
    this._timer = null;
  }
}

/** Adaptive heartbeats: notices connections cut by the network after a consistent idle
 * time shorter than the ping interval (a proxy or NAT with a short idle timeout) and
 * says which shorter interval to ask for at the next negotiate (body `ping_interval`,
 * protocol section 3.1). Two cuts in a row whose idle times agree within `tolerance`
 * (relative) are consistent; the ask is `fraction` of the shorter one (a third: the
 * browser retries a cut poll once, out of sight, which doubles the idle time measured
 * here). Times in ms. */
export class IdleCuts {
  /** `heartbeat` (ms, the `heartbeat` option): the interval to ask for until cuts say
   * otherwise, e.g. a longer one to save battery (granted within the server's
   * `max_ping_interval`); a shorter ask from cuts always wins. */
  constructor(tolerance = 0.25, fraction = 1 / 3, heartbeat = null) {
    if (heartbeat !== null && heartbeat !== undefined && !(heartbeat > 0)) {
      throw new TypeError("heartbeat must be a positive number of ms");
    }
    this.heartbeat = heartbeat ?? null;
    this.tolerance = tolerance;
    this.fraction = fraction;
    this.cuts = 0; // cuts counted as idle cuts
    this.asked = null; // ms, once a pattern was seen
    this._last = null;
  }

  /** A connection pinged every `interval` ms ended `idle` ms after its last traffic
   * (null: the client dropped it itself) with close `code`. True if the ask changed. */
  ended(idle, code, interval) {
    // Only a cut by the network (no close code from the server) that came sooner than
    // the heartbeat says anything about an idle timeout.
    if (idle === null || idle === undefined || !(code === null || code === 1006) || idle >= interval) {
      this._last = null;
      return false;
    }
    this.cuts += 1;
    const last = this._last;
    this._last = idle;
    if (last === null || Math.abs(last - idle) > this.tolerance * Math.max(last, idle)) return false;
    const ask = this.fraction * Math.min(last, idle);
    if (this.asked !== null && ask >= this.asked) return false;
    this.asked = ask;
    return true;
  }

  /** The negotiate body's `ping_interval` (ms), or null to ask for nothing: the
   * shorter of the `heartbeat` option and what cuts asked for. */
  requestMs() {
    const asks = [this.asked, this.heartbeat].filter((a) => a !== null);
    return asks.length ? Math.max(1, Math.round(Math.min(...asks))) : null;
  }
}
