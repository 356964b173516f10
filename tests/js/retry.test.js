// Retry-After of a busy server (session caps: 503/4000; negotiate rate: 429/4008): how the
// client reads it from a negotiate refusal, and that the socket never negotiates sooner.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "../../anywire/clients/js/anywire.js";
import { retryDelay } from "../../anywire/clients/js/backoff.js";
import { MAX_RETRY_AFTER, retryAfter } from "../../anywire/clients/js/negotiate.js";
import { FakeClock, FakeServer, FakeWindow } from "./fakes.js";

test("retryAfter: seconds or an HTTP date in the header, else the body's retry_after", () => {
  assert.equal(retryAfter(503, "5", "{}"), 5000);
  assert.equal(retryAfter(429, " 1 ", ""), 1000);
  const now = Date.parse("Sun, 06 Dec 2026 17:00:00 GMT");
  assert.equal(retryAfter(503, "Sun, 06 Dec 2026 17:00:30 GMT", "", now), 30000);
  assert.equal(retryAfter(503, "Sun, 06 Dec 2026 16:00:00 GMT", "", now), 0); // past: no wait
  // Cross-origin pages see no Retry-After unless exposed: the body carries it too.
  assert.equal(retryAfter(503, null, JSON.stringify({ code: 4000, retry_after: 7 })), 7000);
  assert.equal(retryAfter(503, "soon", JSON.stringify({ retry_after: 2 })), 2000);
  assert.equal(retryAfter(503, null, "<html>busy</html>"), null);
  assert.equal(retryAfter(503, null, JSON.stringify({ retry_after: "7" })), null);
  assert.equal(retryAfter(500, "5", ""), null); // only 503 and 429 ask to wait
  assert.equal(retryAfter(503, "99999999", ""), MAX_RETRY_AFTER);
});

test("retryDelay: the backoff comes on top of the server's wait", () => {
  const delays = [100, 200][Symbol.iterator]();
  assert.equal(retryDelay(delays, 5000), 5100);
  assert.equal(retryDelay(delays, null), 200);
});

async function until(clock, cond, step = 10, limit = 60000) {
  for (let waited = 0; !cond(); waited += step) {
    if (waited > limit) throw new Error(`condition not met within ${limit} ms of fake time`);
    await clock.advance(step);
  }
}

for (const [status, code] of [[503, 4000], [429, 4008]]) {
  test(`a ${status} negotiate is retried after its Retry-After, not sooner, even when woken`, async () => {
    const clock = new FakeClock();
    const server = new FakeServer({ clock });
    const window = new FakeWindow();
    const socket = connect({
      url: "http://srv.test", env: server.env({ window }), upgrade: false, backoffBase: 500,
    });
    server.negotiateStatus = { status, code, headers: { "retry-after": "7" } };
    await until(clock, () => server.negotiations.length === 1);
    const refusedAt = clock.t;
    window.fire("online"); // "back online" ends an ordinary backoff at once, not this wait
    await until(clock, () => server.negotiations.length === 2);
    const waited = clock.t - refusedAt;
    // random() is 0.5 in the fakes: 7000 ms plus half the first ceiling (500 ms).
    assert.ok(waited >= 7000 && waited <= 7300, `negotiated again after ${waited} ms`);
    server.negotiateStatus = null;
    await until(clock, () => socket.state === "connected");
    await socket.close();
  });
}
