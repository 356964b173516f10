// In-band credential refresh (docs/protocol.md section 11.4).
//
// When negotiate says the credential expires (`expires_in`, ms), the socket asks
// getToken() for a fresh one at 80% of the lifetime and hands it to the live session in
// an `auth` frame, on whatever transport carries it: no reconnect, nothing in flight
// disturbed (the frame joins the connection's ordered send queue). The server's ack gives
// the new lifetime, from which the next refresh is planned. A refusal or a lost answer is
// tried again closer to the deadline; should the deadline pass anyway, the server closes
// with 4004 and the socket reconnects with a fresh credential as before.

import { report } from "./handlers.js";
import * as F from "./frames.js";

/** Share of the credential's lifetime after which it is refreshed. */
export const REFRESH_AT = 0.8;
const RETRY_MIN = 200; // ms: the shortest wait before a failed refresh is tried again

/** When to refresh a credential valid for `lifetime` ms. */
export function refreshDelay(lifetime, at = REFRESH_AT) {
  return Math.max(0, lifetime * at);
}

/** Plans and sends the refreshes of one socket's credential. */
export class Refresher {
  constructor(socket, at = REFRESH_AT) {
    this.socket = socket;
    this.at = at;
    /** Refreshes the server accepted. */
    this.refreshed = 0;
    this._timer = null;
    this._generation = 0; // bumped by stop(): a refresh in flight then plans nothing
  }

  /** A connection is live and its credential expires in `expiresIn` ms (null: never). */
  start(expiresIn) {
    this.stop();
    if (typeof expiresIn !== "number") return;
    const env = this.socket.env;
    this._plan(refreshDelay(expiresIn, this.at), env.now() + expiresIn);
  }

  /** The connection ended, or the socket closes: plan nothing. */
  stop() {
    this._generation += 1;
    if (this._timer !== null) this.socket.env.clearTimeout(this._timer);
    this._timer = null;
  }

  _plan(delay, deadline) {
    const generation = this._generation;
    this._timer = this.socket.env.setTimeout(() => {
      this._timer = null;
      this._refresh(deadline, generation);
    }, delay);
  }

  async _refresh(deadline, generation) {
    let fresh = null;
    try {
      fresh = await this._once();
    } catch (err) {
      report(new Error(`token refresh failed: ${err && err.message}`));
    }
    if (generation !== this._generation) return; // the connection ended meanwhile
    const now = this.socket.env.now();
    if (fresh === null) {
      // Refused or unanswered: try again closer to the deadline.
      if (now < deadline) this._plan(Math.max(RETRY_MIN, (deadline - now) / 2), deadline);
      return;
    }
    this.refreshed += 1;
    if (fresh === Infinity || fresh <= 0) return; // never expires now, or expired: 4004 takes over
    this._plan(refreshDelay(fresh, this.at), now + fresh);
  }

  /** One refresh: the new lifetime in ms (Infinity if it never expires). */
  async _once() {
    const s = this.socket;
    const token = await s.options.getToken();
    if (!token || s._live === null || s._state !== "connected") return null;
    const id = s.peer.nextId();
    const wait = s._ackTimeout();
    const answer = await new Promise((resolve, reject) => {
      const timer = s.env.setTimeout(() => {
        s._calls.delete(id);
        reject(new Error(`no answer to refresh ${id} within ${wait} ms`));
      }, wait);
      // The socket's call table: the ack resolves it, a socket stop rejects it.
      s._calls.set(id, { resolve, reject, timer });
      s._live.send([F.auth(id, token)]);
    });
    const expires = answer && answer.expires_in;
    return Number.isInteger(expires) ? expires : Infinity;
  }
}
