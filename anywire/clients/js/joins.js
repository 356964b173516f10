// The rooms a client is in, and its joins awaiting an answer (no I/O).
// A line-by-line mirror of anywire/core/joins.py (JoinRegistry). The rules that keep a
// client's rooms complete whatever happens to its sessions:
//
// * A join is pending from the moment it is sent until its answer arrives, however long
//   that takes: the answer is applied when it comes (the room is recorded), even after
//   the application stopped waiting for it. Nothing times out a join's bookkeeping.
// * When a fresh session replaces a lost one (hello with `recovered: false`), every room
//   the client is in and every pending join must be sent again in the new session:
//   freshSession() says which, keeping a pending join's id so its waiter gets the
//   answer. A join still among the frames the client resends anyway is not sent twice.
// * Leaving a room cancels its pending joins: their answers no longer make it a room the
//   client is in, and they are not sent again.

/**
 * A join sent and not yet answered. `rejoin`: sent by the client itself after a lost
 * session (no application waits for it).
 * @typedef {{id: number, room: string, meta: any, rejoin: boolean, cancelled: boolean}} PendingJoin
 */

/** @returns {PendingJoin} */
export function pendingJoin(id, room, meta = null, rejoin = false) {
  return { id, room, meta, rejoin, cancelled: false };
}

/** Rooms joined (with their presence meta) and joins pending, in request order. */
export class JoinRegistry {
  constructor() {
    /** @type {Map<string, any>} room -> presence meta */
    this.rooms = new Map();
    /** @type {Map<number, PendingJoin>} ack id -> join */
    this.pending = new Map();
  }

  /** A join of `room` was sent with id `ackId`. */
  requested(ackId, room, meta, rejoin = false) {
    this.pending.set(ackId, pendingJoin(ackId, room, meta, rejoin));
  }

  /** The application left `room`: it is no longer a room of the client, and no pending
   * join of it will make it one again. */
  left(room) {
    this.rooms.delete(room);
    for (const join of this.pending.values()) {
      if (join.room === room) join.cancelled = true;
    }
  }

  /** The answer to `ackId` arrived: returns the join it answers (null if it was not a
   * pending join). An accepted join makes the room the client's; a refused rejoin removes
   * it (the application learns through the refusal's report).
   * @returns {PendingJoin|null} */
  answered(ackId, ok) {
    const join = this.pending.get(ackId);
    if (join === undefined) return null;
    this.pending.delete(ackId);
    if (join.cancelled) return join;
    if (ok) this.rooms.set(join.room, join.meta);
    else if (join.rejoin) this.rooms.delete(join.room);
    return join;
  }

  /** The session was replaced by a fresh one, which is in no room. Returns [send,
   * dropped]: the joins to send in it, in order (pending ones keep their id; a room the
   * client is in gets id 0: the caller assigns one), and the cancelled pending joins that
   * will never be answered now (the caller fails their waiters). `resent`: ids of pending
   * joins still among the frames the client resends anyway (left alone).
   * @param {Iterable<number>} resent @returns {[PendingJoin[], PendingJoin[]]} */
  freshSession(resent) {
    const again = new Set(resent);
    const dropped = [...this.pending.values()].filter((j) => j.cancelled && !again.has(j.id));
    for (const join of dropped) this.pending.delete(join.id);
    const waiting = new Set([...this.pending.values()].filter((j) => !j.cancelled).map((j) => j.room));
    const send = [...this.rooms].filter(([room]) => !waiting.has(room)).map(([room, meta]) => pendingJoin(0, room, meta, true));
    send.push(...[...this.pending.values()].filter((j) => !j.cancelled && !again.has(j.id)));
    return [send, dropped];
  }
}
