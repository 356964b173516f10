// The admin page's model (anywire/server/static/admin/model.js): nodes' snapshots added
// up, silent nodes dropped, activity windows aligned, everything bounded.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Model } from "../../anywire/server/static/admin/model.js";

function snap(node, { ws = 0, sse = 0, lp = 0, rooms = [], end = 1000, counts = {}, state = "ok" } = {}) {
  const top = rooms.map(([room, size]) => ({ ns: "/", room, size }));
  return {
    v: 1, node, at: 0, interval: 2,
    sessions: ws + sse + lp,
    transports: { websocket: ws, sse, longpoll: lp, detached: 0 },
    rooms: { count: rooms.length, top },
    activity: { width: 10, end, counts: { connects: [0, 0, 0], resumes: [0, 0, 0], fallbacks: [0, 0, 0], ...counts } },
    broker: { kind: "redis", state },
  };
}

test("nodes add up, and a room's members on each node are summed", () => {
  const m = new Model();
  assert.equal(m.add(snap("a", { ws: 2, sse: 1, rooms: [["lobby", 2], ["x", 1]] }), 0), true);
  assert.equal(m.add(snap("b", { lp: 3, rooms: [["lobby", 3]] }), 0), true);
  const t = m.totals();
  assert.equal(t.sessions, 6);
  assert.deepEqual(t.counts, { websocket: 2, sse: 1, longpoll: 3, detached: 0 });
  assert.deepEqual(m.rooms(1), [{ ns: "/", room: "lobby", size: 5 }]);
  assert.equal(m.rooms(10).length, 2);
});

test("a newer snapshot of a node replaces the older one", () => {
  const m = new Model();
  m.add(snap("a", { ws: 1 }), 0);
  m.add(snap("a", { ws: 4 }), 1000);
  assert.equal(m.totals().counts.websocket, 4);
  assert.equal(m.nodes.size, 1);
});

test("a node silent for three intervals (at least 5 s) drops out", () => {
  const m = new Model();
  m.add(snap("a", { ws: 1 }), 0);
  m.add(snap("b", { ws: 1 }), 4000);
  assert.deepEqual(m.prune(5000), []);
  assert.deepEqual(m.prune(6001), ["a"]);
  assert.deepEqual([...m.nodes.keys()], ["b"]);
  assert.equal(m.totals().sessions, 1);
});

test("activity windows of nodes a window apart are aligned on the newest", () => {
  const m = new Model();
  m.add(snap("a", { end: 1000, counts: { connects: [1, 2, 3] } }), 0);
  m.add(snap("b", { end: 990, counts: { connects: [10, 20, 30] } }), 0); // one window behind
  const a = m.activity();
  assert.equal(a.end, 1000);
  assert.deepEqual(a.counts.connects, [1 + 20, 2 + 30, 3]);
});

test("not a snapshot, or one node too many: refused", () => {
  const m = new Model({ maxNodes: 2 });
  assert.equal(m.add(null, 0), false);
  assert.equal(m.add({ node: 3 }, 0), false);
  m.add(snap("a"), 0);
  m.add(snap("b"), 0);
  assert.equal(m.add(snap("c"), 0), false);
  assert.equal(m.add(snap("a", { ws: 1 }), 0), true); // a known node still updates
});

test("the history of totals is bounded", () => {
  const m = new Model({ historySize: 3 });
  m.add(snap("a", { ws: 1 }), 0);
  for (let i = 0; i < 10; i += 1) m.sample(i);
  assert.equal(m.history.length, 3);
  assert.equal(m.history[2].at, 9);
});

test("broker state: the worst node's", () => {
  const m = new Model();
  assert.equal(m.brokerState(), "none");
  m.add(snap("a"), 0);
  assert.equal(m.brokerState(), "ok");
  m.add(snap("b", { state: "down" }), 0);
  assert.equal(m.brokerState(), "down");
});
