// What keeps a client's streams complete across lost sessions (no I/O).
// A line-by-line mirror of anywire/clients/python/continuity.py (Continuity).
//
// The client's sequencing state (ClientPeer, peer.js) makes one session exactly-once.
// Across sessions (a node failed, the resume window passed) this module keeps the
// promise: every event of every stream reaches the application once, in order, or a
// `$lost` says what did not.
//
// * Every stream event is checked against the client's position in its stream
//   (StreamPositions, positions.js): a duplicate is dropped and counted.
// * Positions go to every negotiate (`since`) and to every rejoin, so a fresh session
//   replays what was missed; a `$lost` moves the position past what it announces.
// * Rooms and pending joins (JoinRegistry, joins.js) are sent again in a fresh session,
//   ahead of the frames the client resends, with up-to-date positions; nothing times
//   them out.
// * Requests a lost session had received but not answered can never be answered: the
//   client is told which, at once (onHello()).

import { RequestLost } from "./errors.js";
import * as F from "./frames.js";
import { JoinRegistry } from "./joins.js";
import { StreamPositions, roomStream } from "./positions.js";

const REQUESTS = new Set(["event", "join", "leave"]);

function isMap(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Positions, rooms and open requests of one client, kept across its sessions. */
export class Continuity {
  /** @param {import("./peer.js").ClientPeer} peer @param {string} namespace */
  constructor(peer, namespace) {
    this.peer = peer;
    this.namespace = namespace;
    this.positions = new StreamPositions(namespace);
    this.joins = new JoinRegistry();
    /** @type {Map<number, [string, string|null]>} id -> [kind, room] */
    this._requests = new Map();
  }

  // -- outbound -----------------------------------------------------------------------
  /** Track an event (a request when it has `ackId`). */
  event(name, data, ackId) {
    const frame = this.peer.event(name, data, ackId);
    if (ackId !== undefined && ackId !== null) this._requests.set(ackId, ["event", null]);
    return frame;
  }

  /** Track a join; it stays pending until answered, whatever happens meanwhile. */
  join(room, meta, since) {
    const frame = this.peer.join(room, meta, since);
    this.joins.requested(frame.id, room, meta);
    this._requests.set(frame.id, ["join", room]);
    return frame;
  }

  /** Track a leave: the room is no longer the client's (nor pending). */
  leave(room) {
    this.joins.left(room);
    this.positions.forget(roomStream(this.namespace, room));
    const frame = this.peer.leave(room);
    this._requests.set(frame.id, ["leave", room]);
    return frame;
  }

  /** The application stopped waiting for `ackId` (a join stays pending). */
  gaveUp(ackId) {
    const kind = this._requests.get(ackId);
    if (kind !== undefined && kind[0] !== "join") this._requests.delete(ackId);
  }

  /** Negotiate's `since`: every stream position the client holds. */
  since() {
    return this.positions.since();
  }

  // -- inbound ------------------------------------------------------------------------
  /** Whether `event` goes to the application (false: a duplicate, counted). */
  accept(event) {
    if (event.o != null && !this.positions.accept(event.o)) return false;
    const d = event.d;
    if (event.e === "$lost" && event.o == null && isMap(d)) {
      const { stream, epoch, to } = d;
      if (typeof stream === "string" && typeof epoch === "string") {
        if (this.positions.left(stream, epoch)) {
          // About an epoch the client has moved on from: told already.
          this.positions.duplicates += 1;
          return false;
        }
        this.positions.lost(stream, epoch, Number.isInteger(to) ? to : null);
      }
    }
    return true;
  }

  /** Apply an answer; returns the join it answered, if it was one.
   * @returns {import("./joins.js").PendingJoin|null} */
  answered(ack) {
    this._requests.delete(ack.id);
    const join = this.joins.answered(ack.id, ack.ok);
    if (join !== null && ack.ok && isMap(ack.d)) presenceSummary(ack.d);
    if (join !== null && ack.ok && !join.cancelled && isMap(ack.d)) {
      const where = ack.d.position;
      if (Array.isArray(where) && where.length === 2 && Number.isInteger(where[1])) {
        this.positions.start(roomStream(this.namespace, join.room), String(where[0]), where[1]);
      }
    }
    return join;
  }

  /** Apply a hello: returns [frames, lost]: the frames to send (rejoins first, then the
   * resent ones) and the open requests that will never be answered, as [id, kind, room]:
   * those the lost session had received (a fresh hello only). */
  onHello(hello) {
    if (hello.recovered) return [this.peer.onHello(hello), []];
    const requests = this.peer.unconfirmed.filter((f) => REQUESTS.has(f.t) && f.id !== undefined);
    const unconfirmed = new Set(requests.map((f) => f.id));
    const resentJoins = requests.filter((f) => f.t === "join").map((f) => f.id);
    const [send, dropped] = this.joins.freshSession(resentJoins);
    const first = [];
    for (const join of send) {
      const ackId = join.id || this.peer.nextId();
      if (!join.id) {
        this.joins.requested(ackId, join.room, join.meta, true);
        this._requests.set(ackId, ["join", join.room]);
      }
      first.push(F.join(0, ackId, join.room, join.meta, this.positions.room(join.room)));
    }
    const frames = this.peer.onHello(hello, first, (f) => this._refresh(f));
    this.positions.fresh(hello.streams);
    const alive = new Set([...unconfirmed, ...first.map((f) => f.id)]);
    const lost = [...this._requests].filter(([id]) => !alive.has(id)).map(([id, [kind, room]]) => [id, kind, room]);
    for (const [ackId] of lost) this._requests.delete(ackId);
    const told = new Set(lost.map(([id]) => id));
    for (const j of dropped) if (!told.has(j.id)) lost.push([j.id, "join", j.room]);
    return [frames, lost];
  }

  /** A resent join asks `since` the client's current position in its room. */
  _refresh(frame) {
    if (frame.t !== "join") return frame;
    const since = this.positions.room(frame.r) ?? frame.since;
    return F.join(frame.s, frame.id, frame.r, frame.meta, since);
  }
}

/** Every join answer says `count` (members in the room) and `partial` (whether `presence`
 * lists only some of them: the server lists at most its presence_limit); filled in from
 * the list for a server that does not send them. */
function presenceSummary(answer) {
  const listed = Array.isArray(answer.presence) ? answer.presence.length : 0;
  if (!Number.isInteger(answer.count)) answer.count = listed;
  answer.partial = answer.partial === true;
}

/** Settles the calls a lost session had received and will never answer (a fresh hello,
 * Continuity.onHello()): a leave is done (the new session is in no room), anything else
 * is lost. `calls`: id -> {resolve, reject, timer}. */
export function settleLost(calls, requests, clearTimer) {
  for (const [id, kind, room] of requests) {
    const call = calls.get(id);
    if (!call) continue;
    calls.delete(id);
    clearTimer(call.timer);
    if (kind === "leave") call.resolve({ room });
    else call.reject(new RequestLost(`request ${id} was lost with its session; it may have run`));
  }
}
