// Where the client stands in every stream it receives (no I/O).
// A line-by-line mirror of anywire/core/positions.py (StreamPositions).
//
// A position is the [epoch, offset] of the last event of a stream the client holds. It
// serves three purposes:
//
// * catching up: after a lost session the client reports every position at negotiate
//   (`since`), and rooms it joins again ask `since` their position, so the server
//   replays exactly what it missed (or announces it with `$lost`);
// * the second line of dedupe: an event at or below the position in the same epoch is
//   dropped, and counted (`duplicates`). The server never sends one (its sessions dedupe
//   per stream too), so the count stays 0 unless something is wrong: tests assert it;
// * starting points: a fresh session's hello lists where each stream the session
//   receives without joining starts, and a join answer where the room starts, so a
//   stream the client has received nothing from yet still has a position to catch up from.
//
// An epoch the client has moved on from (its position went to another epoch of the
// stream) is left: history restarted after it and never goes back to it, so an event of
// a left epoch, or a `$lost` about one, is a repeat of something the client already had
// (`left()`; docs/reliability/sentinel-duplicates.md).

import { setKey } from "./values.js";

const MAX = 1000; // positions kept (the negotiate body carries them all)
const LEFT = 4; // epochs left behind remembered per stream (each failover leaves one)

/** Stream id of a room (anywire/core/streams.py room_stream). */
export function roomStream(namespace, room) {
  return `room:${namespace}:${room}`;
}

/** Positions per stream id, bounded (the least recently moved is forgotten). */
export class StreamPositions {
  /** @param {string} [namespace] @param {number} [limit] */
  constructor(namespace = "/", limit = MAX) {
    this.namespace = namespace;
    this.limit = limit;
    /** @type {Map<string, [string, number]>} stream -> [epoch, offset], least recently moved first */
    this._at = new Map();
    /** @type {string[]} the streams the last fresh hello listed */
    this._implicit = [];
    /** @type {Map<string, string[]>} stream -> epochs moved on from */
    this._left = new Map();
    /** Events dropped because the client already had them: their offset, an epoch it has
     * moved on from, or a `$lost` about one (should stay 0). */
    this.duplicates = 0;
  }

  /** An event at `pos` ([stream, epoch, offset]) arrived: true to deliver it (and move
   * the position), false for a duplicate (counted). */
  accept(pos) {
    const [stream, epoch, offset] = pos;
    const held = this._at.get(stream);
    if ((held !== undefined && held[0] === epoch && offset <= held[1]) || this.left(stream, epoch)) {
      this.duplicates += 1;
      return false;
    }
    this._set(stream, epoch, offset);
    return true;
  }

  /** Whether the client has moved on from `epoch` of `stream` (to a later one): nothing
   * of it can be new. */
  left(stream, epoch) {
    return (this._left.get(stream) ?? []).includes(epoch);
  }

  /** The [epoch, offset] held in `stream`, or null. */
  get(stream) {
    const held = this._at.get(stream);
    return held === undefined ? null : [held[0], held[1]];
  }

  /** The [epoch, offset] held in `room`'s stream, or null. */
  room(room) {
    return this.get(roomStream(this.namespace, room));
  }

  /** The position in the stream of `kind` ("user", "sess", "all") that the last fresh
   * hello listed, or null. */
  implicit(kind) {
    for (const stream of this._implicit) {
      if (stream.startsWith(kind + ":")) return this.get(stream);
    }
    return null;
  }

  /** Position per room name (rooms of this namespace), as a plain object. */
  rooms() {
    const prefix = roomStream(this.namespace, "");
    const out = {};
    for (const [stream, [epoch, offset]] of this._at) {
      if (stream.startsWith(prefix)) setKey(out, stream.slice(prefix.length), [epoch, offset]);
    }
    return out;
  }

  /** The server says the client stands at [epoch, offset] in `stream` (a join answer's
   * `position`, a fresh hello's `streams`): events after it follow. A later position the
   * client holds in that epoch is kept. */
  start(stream, epoch, offset) {
    const held = this._at.get(stream);
    if (this.left(stream, epoch)) return; // a node that has not seen the new epoch yet: never move back
    if (held === undefined || held[0] !== epoch || held[1] < offset) this._set(stream, epoch, offset);
  }

  /** A `$lost` announced `... last` of `stream`: the client moves past it (nothing to
   * move to when the count is unknown, `last` null: the next event brings the new epoch). */
  lost(stream, epoch, last) {
    const held = this._at.get(stream);
    if (this.left(stream, epoch)) return; // announced already: the client has moved on from that epoch
    if (last !== null && last !== undefined && (held === undefined || held[0] !== epoch || held[1] < last)) {
      this._set(stream, epoch, last);
    }
  }

  /** A fresh session's hello: where the streams it receives without joining start
   * ([stream, epoch, offset] each). Those of the previous session that it does not list
   * (its own stream, under another sid) are forgotten (the server announced them lost). */
  fresh(streams) {
    const listed = (streams ?? []).map(([stream]) => stream);
    for (const stream of this._implicit) {
      if (!listed.includes(stream)) this.forget(stream);
    }
    for (const [stream, epoch, offset] of streams ?? []) this.start(stream, epoch, offset);
    this._implicit = listed;
  }

  /** Stop tracking `stream` (the client left the room). */
  forget(stream) {
    this._at.delete(stream);
    this._left.delete(stream);
  }

  /** Every position, as negotiate's `since`: [[stream, epoch, offset], ...]. */
  since() {
    return [...this._at].map(([stream, [epoch, offset]]) => [stream, epoch, offset]);
  }

  _set(stream, epoch, offset) {
    const held = this._at.get(stream);
    if (held !== undefined && held[0] !== epoch) {
      // Moved on to another epoch: the one held is left for good.
      this._left.set(stream, [...(this._left.get(stream) ?? []), held[0]].slice(-LEFT));
    }
    this._at.delete(stream); // re-inserted last: the most recently moved
    this._at.set(stream, [epoch, offset]);
    while (this._at.size > this.limit) {
      const gone = this._at.keys().next().value;
      this._at.delete(gone);
      this._left.delete(gone);
    }
  }
}
