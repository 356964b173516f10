// The liveness rules of the browser client on their own (liveness.js): which sends need
// an answer, and when idle cuts are consistent enough to ask for a shorter heartbeat.
import { test } from "node:test";
import assert from "node:assert/strict";

import { IdleCuts, expectsAnswer } from "../../anywire/clients/js/liveness.js";

test("only frames the server answers arm the half-open watch", () => {
  assert.ok(expectsAnswer([{ t: "event", s: 1, e: "x" }]));
  assert.ok(expectsAnswer([{ t: "rx", n: 1 }, { t: "ping" }]));
  assert.ok(!expectsAnswer([{ t: "pong" }, { t: "rx", n: 3 }]));
});

test("two cuts at about the same idle time, shorter than the heartbeat: ask for a third", () => {
  const cuts = new IdleCuts();
  assert.equal(cuts.ended(3000, null, 20000), false); // one cut says nothing yet
  assert.equal(cuts.requestMs(), null);
  assert.equal(cuts.ended(3200, 1006, 20000), true);
  assert.equal(cuts.requestMs(), 1000);
  assert.equal(cuts.cuts, 2);
  // The same pattern again asks for nothing new; a shorter one lowers the ask.
  assert.equal(cuts.ended(3100, null, 20000), false);
  assert.equal(cuts.ended(2000, null, 20000), false); // 2000 vs 3100: not consistent
  assert.equal(cuts.ended(2100, null, 20000), true);
  assert.equal(cuts.requestMs(), 667);
});

test("cuts that say nothing about an idle timeout are ignored", () => {
  const cuts = new IdleCuts();
  cuts.ended(3000, null, 20000);
  assert.equal(cuts.ended(3000, 4000, 20000), false); // the server closed it (a restart)
  cuts.ended(3000, null, 20000);
  assert.equal(cuts.ended(null, null, 20000), false); // the socket dropped it itself
  cuts.ended(20000, null, 20000);
  assert.equal(cuts.ended(21000, null, 20000), false); // no sooner than the heartbeat
  assert.equal(cuts.requestMs(), null);
  assert.equal(cuts.cuts, 2);
});

test("the heartbeat option is asked for until idle cuts ask for less", () => {
  const cuts = new IdleCuts(undefined, undefined, 30000); // connect({ heartbeat: 30000 })
  assert.equal(cuts.requestMs(), 30000);
  assert.equal(cuts.ended(6000, null, 30000), false);
  assert.equal(cuts.ended(6000, null, 30000), true);
  assert.equal(cuts.requestMs(), 2000); // the shorter ask wins
  assert.throws(() => new IdleCuts(undefined, undefined, 0), TypeError);
  assert.throws(() => new IdleCuts(undefined, undefined, "30s"), TypeError);
});
