// The socket's pacer (anywire/clients/js/pacer.js): a token bucket at 90% of the
// advertised flood_rate holding half of flood_burst, on a virtual clock.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Pacer } from "../../anywire/clients/js/pacer.js";
import { LongPollTransport } from "../../anywire/clients/js/longpoll.js";
import { jsonCodec } from "../../anywire/clients/js/codec.js";
import { LIMITS } from "../../anywire/clients/js/negotiate.js";

/** A virtual clock: setTimeout moves time forward by its delay, at once. Timers longer
 * than `longest` ms never come due (e.g. a transport's half-open watch, which a moving
 * clock would otherwise fire before the fake POST is even answered). */
function clock(longest = Infinity) {
  const env = { t: 0 };
  env.now = () => env.t;
  env.setTimeout = (fn, ms) => {
    if (ms > longest) return 0;
    env.t += ms;
    queueMicrotask(fn);
    return 0;
  };
  env.clearTimeout = () => {};
  return env;
}

test("pacer: the burst goes at once, then 90% of the rate", async () => {
  const env = clock();
  const pacer = new Pacer(env);
  pacer.configure(200, 20); // 180/s, 10 at most
  assert.equal(pacer.maxCost(), 10);
  for (let i = 0; i < 10; i++) await pacer.take();
  assert.equal(env.t, 0);
  assert.equal(pacer.waited, 0);
  for (let i = 0; i < 45; i++) await pacer.take();
  // 45 tokens at 180/s: at least 250 ms; never faster than the server allows.
  assert.ok(env.t >= 250 && env.t < 300, String(env.t));
});

test("pacer: a batch costs a token a frame; more than the bucket waits for a full one", async () => {
  const env = clock();
  const pacer = new Pacer(env);
  pacer.configure(1000, 100); // 0.9 token/ms, 50 at most
  await pacer.take(50);
  assert.equal(env.t, 0);
  await pacer.take(500); // clamped to the bucket: ~56 ms to refill it
  assert.ok(env.t >= 55 && env.t < 60, String(env.t));
});

test("pacer: a flood close empties it; a new budget is followed", async () => {
  const env = clock();
  const pacer = new Pacer(env);
  pacer.configure(1000, 100);
  pacer.spent();
  await pacer.take(9); // 9 tokens at 0.9/ms from empty: 10 ms
  assert.ok(env.t >= 10, String(env.t));
  pacer.configure(1000, 10);
  assert.equal(pacer.maxCost(), 5);
});

test("pacer: without a negotiate it follows the protocol's defaults; pace: false never waits", async () => {
  const env = clock();
  assert.equal(new Pacer(env).maxCost(), LIMITS.flood_burst / 2);
  const off = new Pacer(env, false);
  off.configure(1, 2);
  for (let i = 0; i < 100; i++) await off.take(100);
  assert.equal(env.t, 0);
  assert.ok(off.maxCost() > 1000);
});

test("pacer: the POSTs of a transport wait on it, in batches no larger than the bucket", async () => {
  const env = clock(1000);
  const pacer = new Pacer(env);
  pacer.configure(100, 8); // 90/s, 4 at most: batches of at most 4 frames
  const posted = [];
  let done;
  const third = new Promise((resolve) => (done = resolve));
  env.fetch = async (url, init) => {
    if (init.method === "POST") posted.push(JSON.parse(init.body).length ?? 1);
    if (posted.length === 3) done();
    return { status: 204, headers: { get: () => "" } };
  };
  const neg = { ...LIMITS, token: "tok", send_url: "/send" };
  const t = new LongPollTransport({ base: "", offer: { url: "/poll" }, neg, codec: jsonCodec, env, pacer });
  t.ready = true;
  t.send(Array.from({ length: 10 }, (_, i) => ({ t: "event", s: i + 1, e: "n", d: i })));
  await third;
  assert.deepEqual(posted, [4, 4, 2]);
  // 10 tokens from a bucket of 4 at 90/s: at least 6 waited for, ~67 ms.
  assert.ok(env.t >= 66, String(env.t));
});

test("pacer: a Retry-After is waited out by the next send", async () => {
  const env = clock();
  const pacer = new Pacer(env);
  pacer.configure(1000, 100);
  pacer.spent(2); // a 429 said: come back in 2 s
  pacer.spent(); // the close that followed does not shorten it
  await pacer.take();
  assert.ok(env.t >= 1999, String(env.t));
});
