// What spans sessions, one piece at a time: StreamPositions (a port of
// tests/unit/test_positions.py), JoinRegistry (of tests/unit/test_joins.py) and the
// Continuity that glues them to the peer.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Continuity } from "../../anywire/clients/js/continuity.js";
import * as F from "../../anywire/clients/js/frames.js";
import { JoinRegistry } from "../../anywire/clients/js/joins.js";
import { ClientPeer } from "../../anywire/clients/js/peer.js";
import { StreamPositions } from "../../anywire/clients/js/positions.js";

const R = "room:/:lobby";

// -- StreamPositions ----------------------------------------------------------------------

test("positions: each offset is accepted once and duplicates are counted", () => {
  const pos = new StreamPositions();
  assert.deepEqual([1, 2, 2, 1, 5].map((o) => pos.accept([R, "ep", o])), [true, true, false, false, true]);
  assert.equal(pos.duplicates, 2);
  assert.deepEqual(pos.get(R), ["ep", 5]);
});

test("positions: a new epoch is accepted from any offset", () => {
  const pos = new StreamPositions();
  pos.accept([R, "old", 90]);
  assert.equal(pos.accept([R, "new", 1]), true);
  assert.deepEqual(pos.get(R), ["new", 1]);
  assert.equal(pos.duplicates, 0);
});

test("positions: a start position makes earlier offsets duplicates", () => {
  const pos = new StreamPositions();
  pos.start(R, "ep", 7);
  assert.equal(pos.accept([R, "ep", 7]), false);
  assert.equal(pos.accept([R, "ep", 8]), true);
  pos.start(R, "ep", 3); // behind what the client holds: kept
  assert.deepEqual(pos.get(R), ["ep", 8]);
});

test("positions: a bounded loss moves the position past it", () => {
  const pos = new StreamPositions();
  pos.start(R, "ep", 3);
  pos.lost(R, "ep", 9);
  assert.deepEqual(pos.get(R), ["ep", 9]);
  pos.lost(R, "ep", 5); // behind: no move
  pos.lost(R, "ep", null); // count unknown: nothing to move to
  assert.deepEqual(pos.get(R), ["ep", 9]);
});

test("positions: rooms are a view of this namespace's room streams", () => {
  const pos = new StreamPositions("/chat");
  pos.start("room:/chat:a", "ep", 1);
  pos.start("room:/other:b", "ep", 2);
  pos.start("user:/chat:u", "ep", 3);
  assert.deepEqual(pos.rooms(), { a: ["ep", 1] });
  assert.deepEqual(pos.room("a"), ["ep", 1]);
  assert.equal(pos.room("b"), null);
  pos.rooms().a[1] = 99; // a copy
  assert.deepEqual(pos.room("a"), ["ep", 1]);
});

test("positions: a fresh hello sets its streams and forgets the old session's stream", () => {
  const pos = new StreamPositions();
  pos.fresh([["sess:/:old", "e1", 0], ["all:/", "e2", 4]]);
  pos.accept(["sess:/:old", "e1", 2]);
  assert.deepEqual(pos.implicit("sess"), ["e1", 2]);
  pos.fresh([["sess:/:new", "e3", 0], ["all:/", "e2", 6]]);
  assert.equal(pos.get("sess:/:old"), null);
  assert.deepEqual(pos.since().sort(), [["all:/", "e2", 6], ["sess:/:new", "e3", 0]]);
  assert.deepEqual(pos.implicit("sess"), ["e3", 0]);
  assert.equal(pos.implicit("user"), null);
  pos.fresh(undefined); // a hello without streams: none of them goes on
  assert.deepEqual(pos.since(), []);
});

test("positions: bounded, least recently moved first", () => {
  const pos = new StreamPositions("/", 2);
  pos.start("a", "e", 1);
  pos.start("b", "e", 1);
  pos.accept(["a", "e", 2]);
  pos.start("c", "e", 1);
  assert.equal(pos.get("b"), null);
  assert.deepEqual(pos.get("a"), ["e", 2]);
});

// -- JoinRegistry ---------------------------------------------------------------------------

test("joins: an answer makes the room the client's whenever it comes", () => {
  const reg = new JoinRegistry();
  reg.requested(1, "a", { n: 1 });
  assert.equal(reg.rooms.size, 0);
  const join = reg.answered(1, true);
  assert.equal(join.room, "a");
  assert.deepEqual([...reg.rooms], [["a", { n: 1 }]]);
  assert.equal(reg.answered(1, true), null); // answered once
});

test("joins: a refused join leaves the rooms as they were", () => {
  const reg = new JoinRegistry();
  reg.rooms.set("a", null);
  reg.requested(2, "a", "new meta");
  reg.answered(2, false);
  assert.deepEqual([...reg.rooms], [["a", null]]);
});

test("joins: a refused rejoin removes the room", () => {
  const reg = new JoinRegistry();
  reg.rooms.set("a", null);
  reg.requested(3, "a", null, true);
  reg.answered(3, false);
  assert.equal(reg.rooms.size, 0);
});

test("joins: leaving cancels pending joins of the room", () => {
  const reg = new JoinRegistry();
  reg.requested(1, "a", null);
  reg.left("a");
  assert.equal(reg.answered(1, true).cancelled, true);
  assert.equal(reg.rooms.size, 0);
});

test("joins: a fresh session rejoins rooms, then pending joins not being resent", () => {
  const reg = new JoinRegistry();
  reg.rooms.set("a", 1).set("b", 2);
  reg.requested(7, "c", 3); // confirmed by the old session, answer lost with it
  reg.requested(8, "d", 4); // still among the resent frames
  reg.requested(9, "b", 22); // a new meta for b, pending: b is sent once, with it
  reg.requested(10, "e", 5);
  reg.left("e");
  const [send, dropped] = reg.freshSession(new Set([8]));
  assert.deepEqual(send.map((j) => [j.id, j.room, j.meta, j.rejoin]), [
    [0, "a", 1, true],
    [7, "c", 3, false],
    [9, "b", 22, false],
  ]);
  assert.deepEqual(dropped.map((j) => j.id), [10]);
  assert.equal(reg.pending.has(10), false);
});

// -- Continuity -----------------------------------------------------------------------------

function fresh(sid, streams) {
  return F.hello(sid, false, 0, 0, streams);
}

test("continuity: a fresh hello rejoins ahead of the resent frames and reports what is lost", () => {
  const peer = new ClientPeer();
  const c = new Continuity(peer, "/");
  peer.onHello(fresh("A"));
  const lobby = c.join("lobby", { n: 1 }, null);
  c.answered(F.ack(1, lobby.id, true, { room: "lobby", presence: [], position: ["ep", 4] }));
  assert.deepEqual(c.positions.room("lobby"), ["ep", 4]);
  const call = c.event("echo", 1, peer.nextId());
  const pending = c.join("slow", null, null);
  const left = c.join("x", null, null);
  const leave = c.leave("x");
  peer.confirm(peer.outSeq); // the session received all of it
  const queued = c.join("later", null, ["ep", 1]);
  c.positions.start("room:/:later", "ep", 6);
  c.gaveUp(pending.id); // a join stays pending after a timeout
  const [frames, lost] = c.onHello(fresh("B", [["all:/", "ea", 2]]));
  assert.deepEqual(frames.map((f) => [f.s, f.t, f.r, f.since ?? null]), [
    [1, "join", "lobby", ["ep", 4]],
    [2, "join", "slow", null],
    [3, "join", "later", ["ep", 6]],
  ]);
  assert.equal(frames[1].id, pending.id);
  assert.equal(frames[2].id, queued.id);
  assert.deepEqual(lost, [[call.id, "event", null], [left.id, "join", "x"], [leave.id, "leave", "x"]]);
  assert.deepEqual(c.since(), [["room:/:lobby", "ep", 4], ["room:/:later", "ep", 6], ["all:/", "ea", 2]]);
  // A recovered hello changes none of it.
  assert.deepEqual(c.onHello(F.hello("B", true, 0, 3))[1], []);
});

test("continuity: duplicates and $lost", () => {
  const c = new Continuity(new ClientPeer(), "/");
  const ev = (o, e = "n", d = null) => F.event(1, e, d, undefined, undefined, o);
  assert.equal(c.accept(ev([R, "ep", 3])), true);
  assert.equal(c.accept(ev([R, "ep", 3])), false);
  assert.equal(c.positions.duplicates, 1);
  assert.equal(c.accept(ev(undefined, "$lost", { stream: R, epoch: "ep", from: 4, to: 8 })), true);
  assert.deepEqual(c.positions.get(R), ["ep", 8]);
  c.accept(ev(undefined, "$lost", { stream: R, epoch: "ep", from: 9, to: null }));
  c.accept(ev(undefined, "$lost", "not a map"));
  assert.deepEqual(c.positions.get(R), ["ep", 8]);
  // A cancelled join's answer sets no position; a left room's position is forgotten.
  const join = c.join("lobby", null, null);
  c.leave("lobby");
  c.answered(F.ack(1, join.id, true, { room: "lobby", presence: [], position: ["ep", 20] }));
  assert.equal(c.positions.room("lobby"), null);
  assert.equal(c.joins.rooms.size, 0);
});

test("positions: an epoch moved on from is left and its events are duplicates", () => {
  // A Sentinel failover restarted history ("old" -> "new"); a copy of the session left on
  // another node then replayed the old epoch's events (tests/unit/test_positions.py).
  const pos = new StreamPositions();
  for (let o = 1; o <= 40; o++) assert.equal(pos.accept([R, "old", o]), true);
  assert.equal(pos.left(R, "old"), false);
  for (let o = 1; o <= 70; o++) assert.equal(pos.accept([R, "new", o]), true);
  assert.equal(pos.left(R, "old"), true);
  assert.equal(pos.left(R, "new"), false);
  for (let o = 1; o <= 40; o++) assert.equal(pos.accept([R, "old", o]), false);
  assert.equal(pos.duplicates, 40);
  assert.deepEqual(pos.get(R), ["new", 70]);
  assert.equal(pos.accept([R, "new", 71]), true);
  pos.forget(R); // a room left and joined again starts over
  assert.equal(pos.accept([R, "old", 1]), true);
});

test("positions: a left epoch is never moved back to", () => {
  const pos = new StreamPositions();
  pos.accept([R, "old", 40]);
  pos.accept([R, "new", 3]);
  pos.start(R, "old", 40);
  pos.lost(R, "old", 45);
  assert.deepEqual(pos.get(R), ["new", 3]);
  assert.equal(pos.accept([R, "new", 4]), true);
});

test("positions: epochs left are bounded per stream", () => {
  const pos = new StreamPositions();
  for (let n = 0; n < 10; n++) pos.accept([R, `e${n}`, 1]);
  assert.equal(pos.left(R, "e8"), true);
  assert.equal(pos.left(R, "e5"), true);
  assert.equal(pos.left(R, "e4"), false);
});

test("continuity: a replayed old epoch and its $lost are dropped (tests/unit/test_continuity_epochs.py)", () => {
  const c = new Continuity(new ClientPeer(), "/");
  const tick = (epoch, offset, n) => F.event(1, "tick", n, undefined, "fo-sse", [R, epoch, offset]);
  const lost = () => F.event(1, "$lost", { stream: R, epoch: "A", from: 41, to: null, room: "fo-sse" }, undefined, "fo-sse");
  const first = [];
  for (let i = 0; i < 40; i++) first.push(tick("A", i + 1, i));
  first.push(lost());
  for (let i = 40; i < 110; i++) first.push(tick("B", i - 39, i));
  const again = [...first];
  for (let i = 110; i < 120; i++) again.push(tick("B", i - 39, i));
  const delivered = [...first, ...again].filter((e) => c.accept(e));
  const ticks = delivered.filter((e) => e.e === "tick").map((e) => e.d);
  assert.deepEqual(ticks, Array.from({ length: 120 }, (_, i) => i));
  assert.equal(delivered.filter((e) => e.e === "$lost").length, 1);
  assert.equal(c.positions.duplicates, first.length);
});

test("continuity: a join answer always says count and partial", () => {
  const peer = new ClientPeer();
  const c = new Continuity(peer, "/");
  peer.onHello(fresh("A"));
  const cut = c.join("busy", null, null);
  const page = { room: "busy", presence: [{ sid: "A", user: null, meta: null }], count: 250, partial: true };
  c.answered(F.ack(1, cut.id, true, page));
  assert.equal(page.count, 250);
  assert.equal(page.partial, true);
  const old = c.join("small", null, null); // a server that sends neither
  const answer = { room: "small", presence: [{ sid: "A" }, { sid: "B" }] };
  c.answered(F.ack(2, old.id, true, answer));
  assert.equal(answer.count, 2);
  assert.equal(answer.partial, false);
});
