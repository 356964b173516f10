// Pacing what the socket sends below the server's flood budget (docs/protocol.md 13.4).
//
// The server pays everything a client makes it do from one token bucket per session
// (flood_rate tokens a second, flood_burst at most) and closes a client that overspends
// with 4008. A Pacer is the socket's own, smaller bucket (90% of the rate, half the
// burst) which every message, POST, poll and resume waits on: a loop of 10,000 emits is
// slowed to what the server allows, never refused. One pacer per socket, kept across
// reconnects (the server keeps its budget across resumes); each negotiate answer sets
// its rate and size.

import { LIMITS } from "./negotiate.js";

/** The share of the server's flood_rate a pacer spends. */
export const RATE_SHARE = 0.9;
/** The share of the server's flood_burst a pacer holds. */
export const BURST_SHARE = 0.5;
/** Tokens the server charges a resume (the negotiate that resumes, and the opening). */
export const RESUME_COST = 10;

export class Pacer {
  /** @param {object} env the socket's env (now() in ms, setTimeout) @param {boolean} enabled */
  constructor(env, enabled = true) {
    this.env = env;
    this.enabled = enabled !== false;
    this.rate = 0; // tokens per ms
    this.burst = 0;
    this.level = 0;
    this.at = 0;
    /** Milliseconds spent waiting for tokens, in total (the cost of pacing). */
    this.waited = 0;
    this._configured = false;
  }

  /** Follows the budget a negotiate advertised (the first call starts full; later ones
   * keep what the bucket holds, up to the new size). */
  configure(floodRate, floodBurst) {
    this._refill();
    this.rate = (floodRate * RATE_SHARE) / 1000;
    this.burst = Math.max(1, floodBurst * BURST_SHARE);
    this.level = this._configured ? Math.min(this.level, this.burst) : this.burst;
    this._configured = true;
  }

  /** The most tokens one send can cost: no message may hold more frames. */
  maxCost() {
    if (!this.enabled) return 2 ** 31;
    this._defaults();
    return Math.max(1, Math.floor(this.burst));
  }

  /** The server refused something for flood (4008): start again from empty, or from
   * further below when it said to retry after `retryAfter` seconds (never a shorter
   * wait than already). */
  spent(retryAfter = 0) {
    this._defaults();
    this._refill();
    this.level = Math.min(this.level, -Math.max(0, retryAfter * 1000 - 1 / this.rate) * this.rate);
  }

  /** Resolves once `cost` tokens are there, and spends them (a cost above the bucket
   * waits for a full bucket and spends it all, as the server charges). */
  async take(cost = 1) {
    if (!this.enabled || !(cost > 0)) return;
    this._defaults();
    const need = Math.min(cost, this.burst);
    for (;;) {
      this._refill();
      if (this.level >= need) {
        this.level -= need;
        return;
      }
      const wait = Math.max(1, Math.ceil((need - this.level) / this.rate));
      this.waited += wait;
      await new Promise((resolve) => this.env.setTimeout(resolve, wait));
    }
  }

  _refill() {
    const now = this.env.now();
    if (this._configured) this.level = Math.min(this.burst, this.level + (now - this.at) * this.rate);
    this.at = now;
  }

  _defaults() {
    if (!this._configured) this.configure(LIMITS.flood_rate, LIMITS.flood_burst);
  }
}
