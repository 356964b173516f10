// The client side of a session: sequencing, retransmission, dedupe and acknowledgement.
// A line-by-line mirror of anywire/core/peer.py (ClientPeer); docs/protocol.md section 6.
//
// * Each sequenced frame sent gets the next outSeq and stays in `unconfirmed` until the
//   server's rx (or hello.last) covers it; onHello() returns the frames to send again.
// * Each sequenced frame received is delivered once: at or below inLast it is a
//   duplicate; one that skips ahead means frames were lost (receive() throws, and the
//   socket reconnects and resumes).
// * Receipts: rx by the rule the server advertised (rxrule.js: a drawn count of frames,
//   bytes or time; every 16 frames with an older server) and with every pong.

import { ProtocolError, QueueFull } from "./errors.js";
import * as F from "./frames.js";
import { LEGACY, Receipts } from "./rxrule.js";

export class ClientPeer {
  /** `draw`: where the receipt rule's random thresholds come from (floats in [0, 1)).
   * @param {number} [maxUnconfirmed] @param {object} [rule] @param {() => number} [draw] */
  constructor(maxUnconfirmed = 1000, rule = LEGACY, draw = Math.random) {
    /** @type {string|null} */ this.sid = null;
    this.outSeq = 0;
    /** @type {object[]} */ this.unconfirmed = [];
    this.maxUnconfirmed = maxUnconfirmed;
    this.inLast = 0;
    this.rxSent = 0;
    this.receipts = new Receipts(rule, draw);
    this._nextId = 0;
  }

  /** A fresh id for a request (event with ack, join, leave). */
  nextId() {
    return ++this._nextId;
  }

  /** Whether another frame fits in the retransmission buffer. */
  hasRoom() {
    return this.unconfirmed.length < this.maxUnconfirmed;
  }

  event(name, data, id) {
    return this._track(F.event(this.outSeq + 1, name, data, id));
  }

  ack(id, ok, data, err) {
    return this._track(F.ack(this.outSeq + 1, id, ok, data, err));
  }

  /** A join request (`since`: replay the room from there; `ackId`: an id already given
   * to this request, when it is sent again). */
  join(room, meta, since, ackId) {
    const id = ackId ?? this.nextId();
    return this._track(F.join(this.outSeq + 1, id, room, meta, since));
  }

  leave(room) {
    return this._track(F.leave(this.outSeq + 1, this.nextId(), room));
  }

  _track(frame) {
    if (!this.hasRoom()) throw new QueueFull(`${this.maxUnconfirmed} frames await confirmation`);
    this.outSeq += 1;
    this.unconfirmed.push(frame);
    return frame;
  }

  /** Follows `rule` (rxRule() of the negotiate answer's `rx`) from now on. */
  setRxRule(rule) {
    this.receipts.start(rule);
  }

  /** A message of `size` bytes arrived (the receipt rule's byte limit). */
  receivedBytes(size) {
    this.receipts.received(size);
  }

  /** An rx to send now, if the receipt rule calls for one (or, with `force`, if any
   * frame is unacknowledged). `now` (ms) applies the rule's time limit: call this after
   * each message and again at rxDeadline(). */
  rxDue(force = false, now = null) {
    const owed = this.inLast - this.rxSent;
    if (owed > 0 && (force || this.receipts.due(owed, now))) {
      this.rxSent = this.inLast;
      this.receipts.start();
      return F.rx(this.inLast);
    }
    return null;
  }

  /** When the receipt rule's time limit falls due (ms), or null. */
  rxDeadline() {
    return this.receipts.deadline();
  }

  /** Applies the server's hello; returns the unconfirmed frames to send again, in order.
   * `recovered: false` starts a fresh session: the receive position restarts at
   * hello.seq and what is still unconfirmed is renumbered from hello.last + 1 (also when
   * the sid is unchanged: a resume the server could not serve keeps the sid). For such a
   * hello only, `first` are frames to send ahead of them (rejoins: the client was in
   * those rooms when it sent the rest; their `s` is assigned here) and `rewrite` may
   * replace each resent frame (a join's `since` brought up to date).
   * @param {object} hello @param {object[]} [first] @param {((f: object) => object)|null} [rewrite] */
  onHello(hello, first = [], rewrite = null) {
    if (hello.recovered) {
      const problem = this.helloProblem(hello);
      if (problem !== null) throw new ProtocolError(problem);
    } else {
      this.inLast = hello.seq;
      this.rxSent = hello.seq;
      this.receipts.start();
      this._renumber(hello.last, first, rewrite);
    }
    this.sid = hello.sid;
    this.confirm(hello.last);
    return this.unconfirmed.slice();
  }

  /** Why a recovered hello cannot be true of this client, or null: it resumes another
   * session, or its `last` says the server processed frames never sent (they would be
   * dropped as duplicates: lost) or forgot frames it had confirmed. A fresh hello fits.
   * @param {object} hello @returns {string|null} */
  helloProblem(hello) {
    if (!hello.recovered) return null;
    if (this.sid !== null && hello.sid !== this.sid) return "resumed a different session";
    if (hello.last > this.outSeq) return `hello.last ${hello.last} is beyond the last frame sent, ${this.outSeq}`;
    if (hello.last < this.outSeq - this.unconfirmed.length) return `hello.last ${hello.last} is below frames already confirmed`;
    return null;
  }

  _renumber(base, first = [], rewrite = null) {
    const resent = rewrite ? this.unconfirmed.map((f) => rewrite(f)) : this.unconfirmed;
    this.outSeq = base;
    this.unconfirmed = [...first, ...resent].map((f) => F.withSeq(f, ++this.outSeq));
  }

  /** The server processed every frame up to `n`. */
  confirm(n) {
    let k = 0;
    while (k < this.unconfirmed.length && this.unconfirmed[k].s <= n) k++;
    if (k) this.unconfirmed.splice(0, k);
  }

  /** Accounts for one server frame: returns it if the application must see it, null if
   * it was consumed (rx) or a duplicate. Throws ProtocolError on a sequence gap. */
  receive(frame) {
    if (F.SEQUENCED.has(frame.t)) {
      if (frame.s <= this.inLast) return null;
      if (frame.s !== this.inLast + 1) {
        throw new ProtocolError(`server sequence gap: expected ${this.inLast + 1}, got ${frame.s}`);
      }
      this.inLast += 1;
      return frame;
    }
    if (frame.t === "rx") {
      this.confirm(frame.n);
      return null;
    }
    return frame;
  }
}
