// When the client acknowledges what it received: the receipt rule (docs/protocol.md 6.4).
// A line-by-line mirror of anywire/core/receipts.py.
//
// The server advertises {frames: F, bytes: B, ms: T} at negotiate. After every receipt
// the client draws a threshold uniformly from the integers in [ceil(F/2), F] and scales
// the other limits by u = threshold / F; a receipt is due once `threshold` frames are
// unacknowledged, or B*u bytes arrived since the last one, or a frame has waited T*u ms
// (checked on each message and by a timer, receipts.js). Drawn, the receipts of a room
// (whose clients all get the same events at once) spread over F/2 events instead of all
// arriving on the same one. Without the field (an older server): every 16 frames.

/** The rule of servers that advertise none: a receipt every 16 frames, nothing else. */
export const LEGACY = Object.freeze({ frames: 16, bytes: 0, ms: 0, spread: false });

const uint = (v) => Number.isInteger(v) && v >= 0;

/** The rule a negotiate answer's `rx` field gives; LEGACY when absent or malformed. */
export function rxRule(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return LEGACY;
  const { frames, bytes = 0, ms = 0 } = value;
  if (!(uint(frames) && frames > 0 && uint(bytes) && uint(ms))) return LEGACY;
  return Object.freeze({ frames, bytes, ms, spread: true });
}

/** One client's receipt limits for the current stretch (since its last receipt). Sans
 * I/O: callers pass `now` (ms) and message sizes; `draw` gives floats in [0, 1). */
export class Receipts {
  constructor(rule = LEGACY, draw = Math.random) {
    this.draw = draw;
    this.rule = rule;
    this.start(rule);
  }

  /** Begins a stretch (after a receipt, or on a new connection): draws its limits. */
  start(rule = null) {
    if (rule !== null) this.rule = rule;
    const { frames, bytes, ms, spread } = this.rule;
    if (spread) {
      const low = Math.floor((frames + 1) / 2);
      const span = frames - low; // the draw picks one of span + 1 thresholds
      this.threshold = low + Math.min(Math.floor(this.draw() * (span + 1)), span);
    } else {
      this.threshold = frames;
    }
    const fraction = this.threshold / frames;
    this.maxBytes = bytes * fraction;
    this.wait = ms * fraction;
    this.bytes = 0;
    this.owedSince = null;
  }

  /** A message of `size` bytes arrived. */
  received(size) {
    this.bytes += size;
  }

  /** Whether `owed` (> 0) unacknowledged frames call for a receipt now; `now` starts
   * the time limit at the first check that finds frames owed. */
  due(owed, now = null) {
    if (owed >= this.threshold || (this.maxBytes && this.bytes >= this.maxBytes)) return true;
    if (now === null || !this.wait) return false;
    if (this.owedSince === null) this.owedSince = now;
    return now - this.owedSince >= this.wait;
  }

  /** When the time limit falls due (ms), or null. */
  deadline() {
    return this.owedSince === null || !this.wait ? null : this.owedSince + this.wait;
  }
}
