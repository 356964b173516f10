// Mobile life cycle: when an app returns to the foreground or the network changes (Wi-Fi
// to cellular), its connection may be dead without any close having arrived (the OS froze
// the app, the old network's NAT forgot the flow). Waiting for the next heartbeat means up
// to ping_interval + ping_timeout of silence; checkNow() asks at once instead.

import * as F from "./frames.js";

/** How long checkNow() waits for the server by default (ms; never more than ping_timeout):
 * a live server answers a ping within a round trip. */
export const CHECK_TIMEOUT = 3000;

export class Lifecycle {
  constructor(socket) {
    this.socket = socket;
    this.waiting = new Set();
  }

  /** Anything came from the live connection: it is alive. */
  heard() {
    for (const fn of [...this.waiting]) fn();
  }

  /** Pings the server now. Resolves true if anything comes back within `timeout` ms;
   * otherwise drops the connection (the socket reconnects and resumes at once) and
   * resolves false. Not connected: ends a reconnect backoff in progress, resolves false. */
  check({ timeout } = {}) {
    if (timeout !== undefined && !(timeout > 0)) throw new TypeError("timeout must be positive (ms)");
    const s = this.socket;
    const t = s._live;
    if (!t || s.state !== "connected") {
      s._wake(); // a backoff in progress ends now: try again at once
      return Promise.resolve(false);
    }
    t.watch.check(); // timers may have been frozen meanwhile
    if (t !== s._live) return Promise.resolve(false);
    const limit = Math.min(timeout ?? CHECK_TIMEOUT, s._neg.ping_timeout);
    return new Promise((resolve) => {
      const done = (alive) => {
        s.env.clearTimeout(timer);
        this.waiting.delete(alive_);
        resolve(alive);
      };
      const alive_ = () => done(true);
      const timer = s.env.setTimeout(() => {
        done(false);
        if (t === s._live) t.abort(`no answer to a check within ${limit} ms: connection presumed dead`);
      }, limit);
      this.waiting.add(alive_);
      t.send([F.ping()]);
    });
  }
}
